package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
)

// startSim starts the simulated LM and returns a real OpenAI client for it.
func startSim(t testing.TB, cfg lmtest.Config) (lm.LM, *lmtest.Server) {
	t.Helper()
	srv, err := lmtest.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	model, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_NO_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	return model, srv
}

// running is a server serving on 127.0.0.1 until stop is called (or the
// test ends).
type running struct {
	srv  *serve.Server
	url  string
	addr string
	// run is the trace run the requests belong to, when there is a bus.
	run  event.Span
	stop func() error // cancels Serve's context and returns what Serve returned
}

// startServer serves cfg on a free loopback port. When model is not nil the
// base context carries it; when bus is not nil, it carries the bus and a
// run's root span, as dspex serve's does.
func startServer(t testing.TB, cfg serve.Config, model lm.LM, bus *event.Bus) *running {
	t.Helper()
	base := context.Background()
	if model != nil {
		base = module.WithLM(base, model)
	}
	var run event.Span
	if bus != nil {
		base, run = event.StartRun(event.WithBus(base, bus))
		event.Publish(base, event.RunStart, run, &event.RunInfo{Name: "serve test"})
	}
	cfg.BaseContext = func() context.Context { return base }
	srv, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(30 * time.Second):
				serveErr = errors.New("Serve did not return within 30s of its context ending")
			}
		})
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return &running{srv: srv, url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), run: run, stop: stop}
}

// response is an answer as a test sees it.
type response struct {
	status int
	header http.Header
	body   []byte
	err    error
	took   time.Duration
}

// errorBody is the JSON body of an error answer.
type errorBody struct {
	Error struct {
		Message string   `json:"message"`
		Type    string   `json:"type"`
		Fields  []string `json:"fields"`
	} `json:"error"`
}

func (r response) errorBody(t testing.TB) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e
}

func do(client *http.Client, method, url string, body []byte) response {
	start := time.Now()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return response{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		return response{err: err, took: time.Since(start)}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b, err: err, took: time.Since(start)}
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
	}
}

// collector gathers a bus's events.
type collector struct {
	mu     sync.Mutex
	events []event.Event
}

func collect(t testing.TB, bus *event.Bus) *collector {
	t.Helper()
	c := &collector{}
	if _, err := bus.Subscribe(event.SubscribeOptions{Name: "test"}, func(ev event.Event) {
		c.mu.Lock()
		c.events = append(c.events, ev)
		c.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *collector) all() []event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]event.Event(nil), c.events...)
}

// funcProgram is a program made of a function, for errors, panics and
// blocking.
type funcProgram func(ctx context.Context, in module.Inputs) (*example.Prediction, error)

func (f funcProgram) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	return f(ctx, in)
}
func (f funcProgram) NamedPredictors() []module.NamedPredictor { return nil }
func (f funcProgram) Clone() module.Program                    { return f }

// waitFor polls cond every few milliseconds for at most d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
