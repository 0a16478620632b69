package lm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
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

// Chat and embedding clients send their requests to the base
// URL's path with its query kept.
func TestClientsKeepTheBaseQuery(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		http.Error(w, `{"error": {"message": "no"}}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	base := srv.URL + "/v1?key=X"
	ctx := context.Background()
	req := &Request{Messages: []Message{{Role: RoleUser, Content: "hi"}}}

	chat, err := NewOpenAI(OpenAIConfig{Model: "m", BaseURL: base, APIKeyEnv: unsetKeyEnv})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = chat.Complete(ctx, req)
	emb, err := NewOpenAIEmbedder(OpenAIEmbedderConfig{Model: "m", BaseURL: base, APIKeyEnv: unsetKeyEnv})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = emb.Embed(ctx, []string{"hi"})

	mu.Lock()
	defer mu.Unlock()
	want := []string{"/v1/chat/completions?key=X", "/v1/embeddings?key=X"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("requests went to %q, want %q", got, want)
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
