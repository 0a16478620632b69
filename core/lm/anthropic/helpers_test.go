package anthropic

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/providertest"
)

// captured is one request a fake server saw.
type captured struct {
	path   string
	header http.Header
	body   []byte
}

// fakeServer starts a 127.0.0.1 server whose handler is h and returns its
// base URL ("…/v1").
func fakeServer(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// testKey is the API key the tests configure; it must never reach an error.
const testKey = "sk-test-secret-0123456789"

// userRequest is a request of one user message.
func userRequest(text string) *lm.Request {
	return &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: text}}}
}

// checkError asserts err is an *lm.Error of kind want, matching no other
// kind, that names the model and base URL and does not reveal testKey.
func checkError(t *testing.T, err error, want error, model, base string) *lm.Error {
	t.Helper()
	return providertest.CheckError(t, err, want, model, base, testKey)
}

// maxErrorMessage is the bound Endpoint.Scrub puts on a provider's message.
const maxErrorMessage = 1024

// countingTransport counts the requests it carries.
type countingTransport struct {
	mu sync.Mutex
	n  int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// hangingServer accepts requests and never answers them until the client
// goes away or the test ends. hits counts requests.
func hangingServer(t *testing.T) (base string, hits <-chan struct{}) {
	t.Helper()
	done := make(chan struct{})
	h := make(chan struct{}, 16)
	base = fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case h <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	t.Cleanup(func() { close(done) }) // runs before the server's Close
	return base, h
}

// drainStream collects a stream's deltas and its error, checking that an error
// comes last and only once.
func drainStream(t *testing.T, seq func(func(lm.Delta, error) bool)) ([]lm.Delta, error) {
	t.Helper()
	var deltas []lm.Delta
	var gotErr error
	for d, err := range seq {
		if gotErr != nil {
			t.Fatalf("pair after the error %v: %+v, %v", gotErr, d, err)
		}
		if err != nil {
			gotErr = err
			continue
		}
		deltas = append(deltas, d)
	}
	return deltas, gotErr
}

func usageOf(p, c int) *lm.Usage {
	return &lm.Usage{PromptTokens: p, CompletionTokens: c, TotalTokens: p + c}
}

// partialStreamServer sends first, flushes, tells started, then does then.
func partialStreamServer(t *testing.T, first string, then func(w http.ResponseWriter, r *http.Request)) (base string, started <-chan struct{}) {
	t.Helper()
	s := make(chan struct{}, 1)
	base = fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, first)
		_ = http.NewResponseController(w).Flush()
		select {
		case s <- struct{}{}:
		default:
		}
		then(w, r)
	})
	return base, s
}
