package cli_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/trace"
)

// Secrets of the program files below: a header value and a query
// parameter of the base URL.
const (
	headerVal = "tenant-secret-4567"
	queryVal  = "query-secret-89ab"
)

// echoingLM starts an LM endpoint that fails with status, echoing the
// request's URL and X-Tenant header in its error, and writes a program file
// that calls it with both secrets; it returns the file and the endpoint's
// address.
func echoingLM(t *testing.T, status int) (prog, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lmSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error": {"message": "upstream failed for %s, tenant %s"}}`, r.URL.String(), r.Header.Get("X-Tenant"))
	})}
	go lmSrv.Serve(ln)
	t.Cleanup(func() { lmSrv.Close() })
	prog = writeFile(t, "p.yaml", "lm: {model: m, base_url: \"http://"+ln.Addr().String()+"/v1?key="+queryVal+"\", api_key_env: DSPEX_TEST_UNSET,\n"+
		"  headers: {X-Tenant: "+headerVal+"}, retry: {max_attempts: 1}}\nprogram: {module: predict, signature: \"q -> a\"}\n")
	return prog, ln.Addr().String()
}

// An LM endpoint that fails echoing the request's URL and headers: the
// client of dspex serve gets neither, and the request log and the trace
// database hold the error with the header value and the base URL's query
// parameter redacted.
func TestServeRedactsLMSecrets(t *testing.T) {
	prog, lmAddr := echoingLM(t, http.StatusInternalServerError)
	db := filepath.Join(t.TempDir(), "traces.db")
	p, code, _, stderr := startServe(t, "--program", prog, "--db", db, "--log-level", "info", "--no-cache")
	if p == nil {
		t.Fatalf("serve did not start: exit %d: %s", code, stderr)
	}
	res, err := (&http.Client{Timeout: 30 * time.Second}).Post(p.url+"/v1/predict", "application/json", strings.NewReader(`{"q": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4096)
	n, _ := res.Body.Read(body)
	res.Body.Close()
	answer := string(body[:n])
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(answer, res.Header.Get("X-Request-Id")) {
		t.Errorf("answer %d %s", res.StatusCode, answer)
	}
	for _, leak := range []string{headerVal, queryVal, lmAddr} {
		if strings.Contains(answer, leak) {
			t.Errorf("the client's answer holds %q: %s", leak, answer)
		}
	}
	code, stderr = p.stop(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "upstream failed") || !strings.Contains(stderr, "[redacted]") {
		t.Errorf("the request log lacks the redacted error:\n%s", stderr)
	}
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{headerVal, queryVal} {
		if strings.Contains(stderr, leak) {
			t.Errorf("the log holds %q:\n%s", leak, stderr)
		}
		if strings.Contains(string(b), leak) {
			t.Errorf("the trace database holds %q", leak)
		}
	}
	r, err := trace.OpenReader(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	calls, err := r.LMCalls(context.Background(), trace.LMCallQuery{})
	if err != nil || len(calls) != 1 || !strings.Contains(calls[0].Error, "[redacted]") {
		t.Errorf("LM calls %+v, %v; want one with the redacted error", calls, err)
	}
}

// dspex run prints what a failed LM call said — on its JSON line, on
// standard error and in its exit message — with the program's secrets
// redacted, as its logs and traces are.
func TestRunRedactsLMSecrets(t *testing.T) {
	prog, _ := echoingLM(t, http.StatusBadRequest)
	for _, args := range [][]string{
		{"--input", `{"q": "x"}`},
		{"--inputs", writeFile(t, "in.jsonl", "{\"q\": \"x\"}\n{\"q\": \"y\"}\n")},
	} {
		stdout, stderr, code := runDspex(t, nil, append([]string{"run", "--program", prog, "--no-traces", "--no-cache", "--log-level", "debug"}, args...)...)
		if code != 1 || !strings.Contains(stdout, "[redacted]") {
			t.Errorf("run %v: exit %d, stdout %s; want exit 1 and a redacted error line", args, code, stdout)
		}
		for _, leak := range []string{headerVal, queryVal} {
			if strings.Contains(stdout, leak) || strings.Contains(stderr, leak) {
				t.Errorf("run %v printed %q:\nstdout: %s\nstderr: %s", args, leak, stdout, stderr)
			}
		}
	}
}
