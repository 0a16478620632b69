package runenv

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/programfile"
)

// lm.max_response_bytes bounds a completion of the program's endpoint; a
// negative one, or one on the anthropic provider, is refused.
func TestMaxResponseBytesSetting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("a", 4096) + `"}}]}`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	spec, err := programfile.Parse("p.yaml", []byte("lm: {model: m, base_url: \"http://"+ln.Addr().String()+"/v1\", api_key_env: DSPEX_TEST_NO_KEY, max_response_bytes: 1000, retry: {max_attempts: 1}}\n"+
		"program: {module: predict, signature: \"q -> a\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := Open(context.Background(), spec, Options{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	_, err = env.LM.Complete(context.Background(), &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "q"}}})
	if !errors.Is(err, lm.ErrBadResponse) || !strings.Contains(err.Error(), "1000-byte limit (lm.max_response_bytes)") {
		t.Fatalf("Complete = %v, want the 1000-byte limit named", err)
	}

	for _, c := range []struct{ yaml, want string }{
		{"lm: {model: m, max_response_bytes: -1}\nprogram: {module: predict, signature: \"q -> a\"}\n", "lm.max_response_bytes: must not be negative"},
		{"lm: {model: m, provider: anthropic, max_response_bytes: 10}\nprogram: {module: predict, signature: \"q -> a\"}\n", "supported by the openai provider only"},
	} {
		if _, err := programfile.Parse("p.yaml", []byte(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error saying %q", c.yaml, err, c.want)
		}
	}
}
