package serve_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/redact"
	"github.com/dspex/dspex/core/signature"
)

// An LM endpoint that fails and echoes the request's secrets back: the
// client gets neither the internal URL nor a secret, only the kind of
// failure and a request id; the request event (which the logs and the
// trace store write) holds the full error with every secret redacted, under
// that id.
func TestLMErrorsAreSanitised(t *testing.T) {
	const (
		apiKey    = "sk-test-api-key-0123"
		headerVal = "tenant-secret-4567"
		queryVal  = "query-secret-89ab"
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lmSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `{"error": {"message": "upstream failed for %s with key %s and tenant %s"}}`,
			r.URL.String(), r.Header.Get("Authorization"), r.Header.Get("X-Tenant"))
	})}
	go lmSrv.Serve(ln)
	t.Cleanup(func() { lmSrv.Close() })
	baseURL := "http://" + ln.Addr().String() + "/v1?key=" + queryVal
	t.Setenv("DSPEX_TEST_SANITISE_KEY", apiKey)
	model, err := openai.New(openai.Config{Model: "m", BaseURL: baseURL, APIKeyEnv: "DSPEX_TEST_SANITISE_KEY",
		Headers: map[string]string{"X-Tenant": headerVal}})
	if err != nil {
		t.Fatal(err)
	}
	secrets := append([]string{os.Getenv("DSPEX_TEST_SANITISE_KEY"), headerVal}, redact.URLSecrets(baseURL)...)

	bus := event.NewBus()
	t.Cleanup(bus.Close)
	events := collect(t, bus)
	sig := signature.MustParse("question -> answer")
	rs := startServer(t, serve.Config{Program: module.NewPredict(sig), Signature: sig,
		Redact: redact.New(secrets...).String}, model, bus)
	res := do(newClient(1), http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "q"}`))
	if res.err != nil || res.status != http.StatusBadGateway {
		t.Fatalf("status %d, err %v, body %s", res.status, res.err, res.body)
	}
	id := res.header.Get(serve.RequestIDHeader)
	for _, leak := range []string{apiKey, headerVal, queryVal, ln.Addr().String(), "upstream failed"} {
		if strings.Contains(string(res.body), leak) {
			t.Errorf("the client's answer holds %q: %s", leak, res.body)
		}
	}
	if msg := res.errorBody(t).Error.Message; !strings.Contains(msg, "server error (HTTP 500)") || !strings.Contains(msg, id) {
		t.Errorf("message %q does not name the failure and the request id %s", msg, id)
	}

	var info *event.HTTPRequestInfo
	waitFor(t, 5*time.Second, "the request event", func() bool {
		for _, ev := range events.all() {
			if d, ok := ev.Data.(*event.HTTPRequestInfo); ok && ev.Kind == event.HTTPRequest && ev.SpanID == id {
				info = d
			}
		}
		return info != nil
	})
	if !strings.Contains(info.Error, "upstream failed") || !strings.Contains(info.Error, redact.Marker) {
		t.Errorf("the recorded error lacks the provider's message or the redaction marker: %q", info.Error)
	}
	for _, leak := range []string{apiKey, headerVal, queryVal} {
		if strings.Contains(info.Error, leak) {
			t.Errorf("the recorded error holds the secret %q: %s", leak, info.Error)
		}
	}
}
