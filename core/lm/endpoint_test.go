package lm

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCheckBaseURL(t *testing.T) {
	for _, c := range []struct{ base, want string }{
		{"http://127.0.0.1:8089/v1", ""},
		{"https://gateway.example/v1?key=secret", ""},
		{"127.0.0.1:8089/v1", `base url "127.0.0.1:8089/v1" is not an absolute http or https url: it has no scheme; did you mean "http://127.0.0.1:8089/v1"?`},
		{"localhost/v1", `did you mean "http://localhost/v1"?`},
		{"user:pw@host:1/v1", `did you mean "http://host:1/v1"?`},
		{"ftp://host/v1", `base url "ftp://host/v1" is not an absolute http or https url`},
		{"/v1", "is not an absolute http or https url"},
		{"http://bad host/", "parse base url: invalid character"},
	} {
		err := CheckBaseURL(c.base)
		if c.want == "" {
			if err != nil {
				t.Errorf("CheckBaseURL(%q) = %v", c.base, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckBaseURL(%q) = %v, want %q", c.base, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("CheckBaseURL(%q) = %v repeats the credentials", c.base, err)
		}
	}
}

func TestJoinURLKeepsTheQuery(t *testing.T) {
	for _, c := range []struct{ base, path, want string }{
		{"http://h/v1", "/chat/completions", "http://h/v1/chat/completions"},
		{"http://h/v1/", "/chat/completions", "http://h/v1/chat/completions"},
		{"http://h/v1?key=X", "/chat/completions", "http://h/v1/chat/completions?key=X"},
		{"http://h/v1/?key=X&b=a%2Fb#frag", "/embeddings", "http://h/v1/embeddings?key=X&b=a%2Fb"},
		{"http://h", "/embeddings", "http://h/embeddings"},
		{"http://h/a%2Fb/v1", "/embeddings", "http://h/a%2Fb/v1/embeddings"},
	} {
		if got := joinURL(c.base, c.path); got != c.want {
			t.Errorf("joinURL(%q, %q) = %q, want %q", c.base, c.path, got, c.want)
		}
	}
}

// FuzzCheckBaseURL: an accepted base URL joins with a path into a URL
// with that path appended and the base's query kept; a refused one's
// error never repeats a password.
func FuzzCheckBaseURL(f *testing.F) {
	for _, s := range []string{"http://h/v1", "h:1/v1", "https://u:pw@h/v1?key=X#f", "http://h/%2F/", "ftp://h", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		err := CheckBaseURL(base)
		if err != nil {
			if u, perr := url.Parse(base); perr == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && len(pw) > 3 && strings.Contains(err.Error(), pw) {
					t.Fatalf("CheckBaseURL(%q) = %v repeats the password", base, err)
				}
			}
			return
		}
		joined, perr := url.Parse(joinURL(base, "/chat/completions"))
		if perr != nil {
			t.Fatalf("joinURL(%q) = %q does not parse: %v", base, joinURL(base, "/chat/completions"), perr)
		}
		b, _ := url.Parse(base)
		if !strings.HasSuffix(joined.Path, "/chat/completions") || joined.RawQuery != b.RawQuery || joined.Host != b.Host {
			t.Fatalf("joinURL(%q) = %q", base, joined)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{name: "none"},
		{name: "seconds", header: map[string]string{"Retry-After": "12"}, want: 12 * time.Second},
		{name: "fractional seconds", header: map[string]string{"Retry-After": "1.5"}, want: 1500 * time.Millisecond},
		{name: "http date", header: map[string]string{"Retry-After": "Sun, 01 Mar 2026 12:00:45 GMT"}, want: 45 * time.Second},
		{name: "rfc 850 date", header: map[string]string{"Retry-After": "Sunday, 01-Mar-26 12:01:00 GMT"}, want: time.Minute},
		{name: "past date", header: map[string]string{"Retry-After": "Sun, 01 Mar 2026 11:00:00 GMT"}},
		{name: "milliseconds win", header: map[string]string{"Retry-After": "3", "Retry-After-Ms": "40"}, want: 40 * time.Millisecond},
		{name: "bad milliseconds fall back", header: map[string]string{"Retry-After": "3", "Retry-After-Ms": "x"}, want: 3 * time.Second},
		{name: "negative", header: map[string]string{"Retry-After": "-5"}},
		{name: "zero", header: map[string]string{"Retry-After": "0"}},
		{name: "not a number", header: map[string]string{"Retry-After": "NaN"}},
		{name: "infinite", header: map[string]string{"Retry-After": "1e400"}},
		{name: "absurd", header: map[string]string{"Retry-After-Ms": "1e30"}},
		{name: "garbage", header: map[string]string{"Retry-After": "later"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("retryAfter(%v) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}
