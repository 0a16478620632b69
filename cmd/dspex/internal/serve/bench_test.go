package serve_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/trace"
)

// BenchmarkServe measures the server's throughput and the latency it adds:
// benchClients clients send predictions at once; the program's one LM call
// goes through the real OpenAI client to the simulator, which waits a fixed
// benchLatency before answering. Each run reports requests per second and
// the 50th and 99th percentile of (request latency − benchLatency): what
// everything but the simulated model costs.
//
//   - direct: the program called in-process, no HTTP server (the baseline:
//     client, adapter and simulator costs);
//   - http: through the server, no event bus;
//   - http+traces: through the server with the events of every request
//     written to a SQLite trace store, as dspex serve does by default.
//
// Run it with: go test -run '^$' -bench BenchmarkServe -benchtime 3000x ./internal/serve/
func BenchmarkServe(b *testing.B) {
	const (
		benchLatency = 20 * time.Millisecond
		benchClients = 64
	)
	model, _ := startSim(b, lmtest.Config{Latency: lmtest.Latency{Dist: lmtest.LatencyFixed, Value: benchLatency}})
	sig := signature.MustParse("question -> answer")
	prog := module.NewPredict(sig)
	body := func(i int) string { return fmt.Sprintf(`{"question": "benchmark question %d"}`, i) }

	b.Run("direct", func(b *testing.B) {
		ctx := module.WithLM(context.Background(), model)
		measure(b, benchClients, benchLatency, func(i int) error {
			_, err := prog.Forward(ctx, module.Inputs{"question": fmt.Sprintf("benchmark question %d", i)})
			return err
		})
	})
	for _, traced := range []bool{false, true} {
		name := "http"
		if traced {
			name = "http+traces"
		}
		b.Run(name, func(b *testing.B) {
			var (
				bus   *event.Bus
				store *trace.Store
				db    = filepath.Join(b.TempDir(), "traces.db")
			)
			if traced {
				bus = event.NewBus()
				var err error
				if store, err = trace.Open(context.Background(), db, trace.Options{}); err != nil {
					b.Fatal(err)
				}
				if err := store.Attach(bus); err != nil {
					b.Fatal(err)
				}
			}
			rs := startServer(b, serve.Config{Program: prog, Signature: sig, MaxConcurrent: benchClients}, model, bus)
			client := &http.Client{Timeout: 30 * time.Second,
				Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}
			url := rs.url + serve.PathPredict
			measure(b, benchClients, benchLatency, func(i int) error {
				res, err := client.Post(url, "application/json", strings.NewReader(body(i)))
				if err != nil {
					return err
				}
				defer res.Body.Close()
				var buf [512]byte
				for {
					if _, err := res.Body.Read(buf[:]); err != nil {
						break
					}
				}
				if res.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d", res.StatusCode)
				}
				return nil
			})
			if err := rs.stop(); err != nil {
				b.Error(err)
			}
			if traced {
				bus.Close()
				if err := store.Close(); err != nil {
					b.Fatal(err)
				}
				checkTraced(b, db, rs.run.RunID, b.N)
			}
		})
	}
}

// measure runs b.N calls from clients goroutines and reports requests per
// second and the percentiles of each call's latency above floor.
func measure(b *testing.B, clients int, floor time.Duration, call func(i int) error) {
	lat := make([]time.Duration, b.N)
	var next, failed atomic.Int64
	var (
		errMu    sync.Mutex
		firstErr error
	)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := call(i); err != nil {
					if failed.Add(1) == 1 {
						errMu.Lock()
						firstErr = err
						errMu.Unlock()
					}
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		errMu.Lock()
		defer errMu.Unlock()
		b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstErr)
	}
	slices.Sort(lat)
	pct := func(p int) float64 {
		d := lat[min(len(lat)-1, len(lat)*p/100)] - floor
		return float64(d) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(50), "p50-added-ms")
	b.ReportMetric(pct(99), "p99-added-ms")
}

// checkTraced checks that the trace store holds a request event for each
// of n requests of run, so that the traced figures measure real writes.
func checkTraced(b *testing.B, db, run string, n int) {
	r, err := trace.OpenReader(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	evs, err := r.Events(context.Background(), run, string(event.HTTPRequest))
	if err != nil {
		b.Fatal(err)
	}
	spans, err := r.Spans(context.Background(), run)
	if err != nil {
		b.Fatal(err)
	}
	if len(evs) != n || len(spans) != 2*n {
		b.Fatalf("trace store holds %d request events and %d spans for %d requests", len(evs), len(spans), n)
	}
}
