package serve_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// gauge wraps a program, recording the most predictions it ran at once.
type gauge struct {
	now, peak atomic.Int64
}

func (g *gauge) wrap(p module.Program) funcProgram {
	return func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		n := g.now.Add(1)
		defer g.now.Add(-1)
		for {
			m := g.peak.Load()
			if n <= m || g.peak.CompareAndSwap(m, n) {
				break
			}
		}
		return p.Forward(ctx, in)
	}
}

// fire sends n predictions at once (released together) and returns the
// answers in order.
func fire(url string, n int) []response {
	client := newClient(n)
	out := make([]response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = do(client, http.MethodPost, url+"/v1/predict", []byte(fmt.Sprintf(`{"question": "question %d"}`, i)))
		})
	}
	close(start)
	wg.Wait()
	return out
}

// With 4 slots and a queue of 4 against a 200ms simulator: 8 clients at
// once all get answers; 30 at once overflow the queue, and those refused
// get 429 with Retry-After at once while every other gets its answer.
func TestConcurrencyLimits(t *testing.T) {
	const latency = 200 * time.Millisecond
	model, _ := startSim(t, lmtest.Config{Latency: lmtest.Latency{Dist: lmtest.LatencyFixed, Value: latency}})
	sig := signature.MustParse("question -> answer")
	cases := []struct {
		clients int
		want429 bool
		minOK   int
	}{
		{clients: 8, minOK: 8},
		{clients: 30, want429: true, minOK: 8},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d clients", c.clients), func(t *testing.T) {
			g := &gauge{}
			rs := startServer(t, serve.Config{Program: g.wrap(module.NewPredict(sig)), Signature: sig, MaxConcurrent: 4, MaxQueue: 4}, model, nil)
			results := fire(rs.url, c.clients)
			ok, refused := 0, 0
			for i, r := range results {
				switch {
				case r.err != nil:
					t.Errorf("client %d: %v after %s", i, r.err, r.took)
				case r.status == http.StatusOK:
					ok++
				case r.status == http.StatusTooManyRequests:
					refused++
					if ra := r.header.Get("Retry-After"); ra != "1" {
						t.Errorf("client %d: 429 with Retry-After %q", i, ra)
					}
					if e := r.errorBody(t); e.Error.Type != serve.ErrorTypeOverloaded || !strings.Contains(e.Error.Message, "retry after 1s") {
						t.Errorf("client %d: 429 body %+v", i, e.Error)
					}
					// Refusals are immediate: far less than one prediction's time.
					if r.took > latency {
						t.Errorf("client %d: 429 took %s", i, r.took)
					}
				default:
					t.Errorf("client %d: status %d: %s", i, r.status, r.body)
				}
				if testing.Verbose() {
					t.Logf("client %d: %d after %s", i, r.status, r.took)
				}
			}
			if ok+refused != c.clients || ok < c.minOK || (refused > 0) != c.want429 {
				t.Errorf("%d answered, %d refused of %d clients", ok, refused, c.clients)
			}
			if p := g.peak.Load(); p > 4 {
				t.Errorf("%d predictions ran at once, more than MaxConcurrent 4", p)
			}
			if st := rs.srv.Stats(); st.Refused != int64(refused) || st.Running != 0 || st.Waiting != 0 {
				t.Errorf("stats = %+v, %d refused", st, refused)
			}
		})
	}
}

// A queued request whose deadline passes while it waits gets 504, and
// leaves the queue.
func TestQueueTimeout(t *testing.T) {
	sig := signature.MustParse("question -> answer")
	release := make(chan struct{})
	// The program holds its slot until released, past its own deadline.
	prog := funcProgram(func(ctx context.Context, _ module.Inputs) (*example.Prediction, error) {
		<-release
		return example.NewPrediction(map[string]any{"answer": "done"}), nil
	})
	rs := startServer(t, serve.Config{Program: prog, Signature: sig, MaxConcurrent: 1, RequestTimeout: 300 * time.Millisecond}, nil, nil)
	client := newClient(2)
	first := make(chan response, 1)
	go func() { first <- do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "a"}`)) }()
	waitFor(t, 5*time.Second, "the first request to run", func() bool { return rs.srv.Stats().Running == 1 })
	res := do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "b"}`))
	if res.err != nil || res.status != http.StatusGatewayTimeout {
		t.Fatalf("queued request: status %d, err %v, body %s", res.status, res.err, res.body)
	}
	if e := res.errorBody(t); e.Error.Type != serve.ErrorTypeTimeout || !strings.Contains(e.Error.Message, "waited for a free slot") {
		t.Errorf("error = %+v", e.Error)
	}
	close(release)
	if r := <-first; r.status != http.StatusOK {
		t.Errorf("first request: %d %s", r.status, r.body)
	}
	if st := rs.srv.Stats(); st.Waiting != 0 || st.Abandoned != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// Cancelling Serve's context while requests run and wait: every accepted
// request gets its answer, /healthz says draining, new connections are
// refused, and Serve returns nil once all are answered.
func TestGracefulShutdown(t *testing.T) {
	const (
		latency = 400 * time.Millisecond
		n       = 12
	)
	model, sim := startSim(t, lmtest.Config{Latency: lmtest.Latency{Dist: lmtest.LatencyFixed, Value: latency}})
	sig := signature.MustParse("question -> answer")
	rs := startServer(t, serve.Config{Program: module.NewPredict(sig), Signature: sig, MaxConcurrent: 4, MaxQueue: 8}, model, nil)

	results := make(chan response, n)
	client := newClient(n)
	for i := range n {
		go func() {
			results <- do(client, http.MethodPost, rs.url+"/v1/predict", []byte(fmt.Sprintf(`{"question": "q%d"}`, i)))
		}()
	}
	waitFor(t, 10*time.Second, "every request to be accepted", func() bool {
		st := rs.srv.Stats()
		return st.Running == 4 && st.Waiting == n-4
	})
	stopped := make(chan error, 1)
	go func() { stopped <- rs.stop() }()

	waitFor(t, 5*time.Second, "the server to start draining", rs.srv.Draining)
	rec := httptest.NewRecorder()
	rs.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"status":"draining"`) {
		t.Errorf("healthz while draining: %d %s", rec.Code, rec.Body)
	}
	// New connections are refused while the accepted requests drain.
	refused := false
	for range 200 {
		conn, err := net.DialTimeout("tcp", rs.addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		conn.Close()
		time.Sleep(5 * time.Millisecond)
	}
	if !refused {
		t.Error("new connections were still accepted while draining")
	}
	if st := rs.srv.Stats(); st.Running+st.Waiting == 0 {
		t.Error("the requests were finished before the drain was observed; the test proves nothing")
	}

	for range n {
		r := <-results
		if r.err != nil || r.status != http.StatusOK {
			t.Errorf("accepted request lost: status %d, err %v, body %s", r.status, r.err, r.body)
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	if got := sim.Stats().Completions; got != n {
		t.Errorf("the simulator answered %d completions, want %d", got, n)
	}
	if _, err := net.DialTimeout("tcp", rs.addr, time.Second); err == nil {
		t.Error("connection accepted after Serve returned")
	}
}

// A request that outlives the drain timeout is cut off: its program is
// cancelled and Serve reports it.
func TestDrainTimeout(t *testing.T) {
	sig := signature.MustParse("question -> answer")
	started := make(chan struct{}, 1)
	prog := funcProgram(func(ctx context.Context, _ module.Inputs) (*example.Prediction, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	rs := startServer(t, serve.Config{Program: prog, Signature: sig, DrainTimeout: 200 * time.Millisecond}, nil, nil)
	res := make(chan response, 1)
	go func() { res <- do(newClient(1), http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "a"}`)) }()
	<-started
	start := time.Now()
	err := rs.stop()
	if err == nil || !strings.Contains(err.Error(), "drain timed out after 200ms: 1 requests cut off") {
		t.Errorf("Serve returned %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Serve took %s to return", d)
	}
	if r := <-res; r.err == nil {
		t.Errorf("a cut-off request was answered %d", r.status)
	}
}

// Serve refuses a second call.
func TestServeTwice(t *testing.T) {
	sig := signature.MustParse("q -> a")
	rs := startServer(t, serve.Config{Program: module.NewPredict(sig), Signature: sig}, nil, nil)
	// The first Serve is running once it answers.
	if res := do(newClient(1), http.MethodGet, rs.url+"/healthz", nil); res.status != http.StatusOK {
		t.Fatalf("healthz: %d %v", res.status, res.err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.srv.Serve(context.Background(), ln); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Serve = %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the second listener was left open")
	}
}
