package redact

import (
	"bytes"
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	r := New("sk-secret-key", "hdr-value-123", "abc", "", "tok en/+")
	for _, c := range []struct{ in, want string }{
		{"auth failed for sk-secret-key", "auth failed for [redacted]"},
		{"header echoed: hdr-value-123, again hdr-value-123", "header echoed: [redacted], again [redacted]"},
		{"abc is too short to be a secret", "abc is too short to be a secret"},
		{"Post \"http://h/v1?t=tok+en%2F%2B\": refused", "Post \"http://h/v1?t=[redacted]\": refused"},
		{"path http://h/tok%20en%2F+/x", "path http://h/[redacted]/x"},
		{"nothing here", "nothing here"},
	} {
		if got := r.String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	var nilR *Redactor
	if got := nilR.String("sk-secret-key"); got != "sk-secret-key" {
		t.Errorf("nil redactor changed the text: %q", got)
	}
	if New().Func() != nil || New("x").Func() != nil {
		t.Error("a redactor of no secrets has a Func")
	}
}

func TestLongestSecretFirst(t *testing.T) {
	r := New("key1", "key1-and-more")
	if got := r.String("key1-and-more"); got != Marker {
		t.Errorf("got %q, want the longer secret replaced whole", got)
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := New("hunter22").Writer(&buf)
	line := "error: bad password hunter22\n"
	n, err := w.Write([]byte(line))
	if err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(line))
	}
	if got := buf.String(); got != "error: bad password [redacted]\n" {
		t.Errorf("wrote %q", got)
	}
}

func TestURLSecrets(t *testing.T) {
	got := URLSecrets("https://user:pa55word@api.example.test/v1?api-version=2024&key=qwerty123")
	for _, want := range []string{"user", "pa55word", "2024", "qwerty123", "api-version=2024&key=qwerty123"} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("URLSecrets misses %q: %q", want, got)
		}
	}
	if s := URLSecrets("http://127.0.0.1:8080/v1"); len(s) != 0 {
		t.Errorf("a URL without credentials or query has secrets %q", s)
	}
	r := New(URLSecrets("http://h/v1?key=qwerty123")...)
	if got := r.String(`Post "http://h/v1/chat/completions?key=qwerty123": dial tcp: refused`); strings.Contains(got, "qwerty123") {
		t.Errorf("query value not redacted: %q", got)
	}
}
