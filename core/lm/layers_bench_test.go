package lm_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/cache"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
)

// BenchmarkCacheHit measures a whole Stack call answered from the cache:
// from the memory tier, and from the SQLite tier (memory tier off).
func BenchmarkCacheHit(b *testing.B) {
	_, client := sim(b, "")
	for _, tier := range []string{"memory", "disk"} {
		b.Run(tier, func(b *testing.B) {
			opts := cache.Options{Path: filepath.Join(b.TempDir(), "c.db")}
			if tier == "disk" {
				opts.MemoryEntries = -1
			}
			c, err := cache.Open(context.Background(), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			m := lm.NewStack(client, lm.ExecConfig{Cache: store{c}})
			req := ask("a question that is asked again and again")
			if _, err := m.Complete(context.Background(), req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				res, err := m.Complete(context.Background(), req)
				if err != nil || !res.CacheHit {
					b.Fatalf("hit=%v err=%v", res != nil && res.CacheHit, err)
				}
			}
		})
	}
}

// BenchmarkPoolThroughput sends 1,000 concurrent callers (two distinct
// calls each) through a pool of 64 slots to the simulated LM answering in
// 50ms. The ideal rate is slots / latency = 1,280 calls/s; it reports the
// achieved rate and its fraction of the ideal (goal >= 0.9).
func BenchmarkPoolThroughput(b *testing.B) {
	const (
		callers  = 1000
		perCall  = 2
		slots    = 64
		latency  = 50 * time.Millisecond
		idealRPS = float64(slots) / 0.05
	)
	l, _ := lmtest.ParseLatency("50ms")
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Latency: l, MaxInFlight: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	m := lm.NewStack(client, lm.ExecConfig{Pool: lm.PoolConfig{Size: slots, Queue: callers}})
	var total time.Duration
	round := 0
	for b.Loop() {
		round++
		start := time.Now()
		var wg sync.WaitGroup
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range perCall {
					if _, err := m.Complete(context.Background(), ask(fmt.Sprintf("r%d c%d k%d", round, c, k))); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		total += time.Since(start)
	}
	rps := float64(round*callers*perCall) / total.Seconds()
	b.ReportMetric(rps, "calls/s")
	b.ReportMetric(rps/idealRPS, "of-ideal")
	_ = latency
}

// blockingLM is a provider that never answers until its caller gives up,
// so calls stay in flight.
type blockingLM struct{ entered chan struct{} }

func (blockingLM) Model() string { return "blocking" }
func (b blockingLM) Complete(ctx context.Context, _ *lm.Request) (*lm.Response, error) {
	b.entered <- struct{}{}
	<-ctx.Done()
	return nil, &lm.Error{Kind: lm.ErrCanceled, Err: ctx.Err()}
}

// BenchmarkHeapPerInFlight holds 1,000 calls in flight and reports the heap
// and goroutine stack each holds: "layers" through a Stack over a provider
// that blocks (the execution layers alone), "http" through a Stack over the
// OpenAI client to the simulated LM, which runs in the same process, so
// that figure also holds the simulator's side of each request.
func BenchmarkHeapPerInFlight(b *testing.B) {
	const inflight = 1000
	measure := func(b *testing.B, m lm.LM, ready func() bool) {
		var heap, stk float64
		for b.Loop() {
			ctx, cancel := context.WithCancel(context.Background())
			before := memStats()
			var wg sync.WaitGroup
			for i := range inflight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, _ = m.Complete(ctx, ask(fmt.Sprint("in flight ", i)))
				}()
			}
			deadline := time.Now().Add(30 * time.Second)
			for !ready() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			during := memStats()
			cancel()
			wg.Wait()
			heap = float64(int64(during.HeapInuse)-int64(before.HeapInuse)) / inflight
			stk = float64(int64(during.StackInuse)-int64(before.StackInuse)) / inflight
		}
		b.ReportMetric(heap, "heap-B/inflight")
		b.ReportMetric(stk, "stack-B/inflight")
	}
	b.Run("layers", func(b *testing.B) {
		prov := blockingLM{entered: make(chan struct{}, inflight)}
		m := lm.NewStack(prov, lm.ExecConfig{Pool: lm.PoolConfig{Size: inflight}})
		n := 0
		measure(b, m, func() bool {
			for {
				select {
				case <-prov.entered:
					n++
				default:
					if n >= inflight {
						n = 0
						return true
					}
					return false
				}
			}
		})
	})
	b.Run("http", func(b *testing.B) {
		f, _ := lmtest.ParseFault("hang")
		srv, err := lmtest.Start(context.Background(), lmtest.Config{Faults: []lmtest.Fault{f}, MaxInFlight: 4096})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		client, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
		m := lm.NewStack(client, lm.ExecConfig{Pool: lm.PoolConfig{Size: inflight}})
		seen := int64(0)
		measure(b, m, func() bool {
			if srv.Stats().Requests-seen >= inflight {
				seen = srv.Stats().Requests
				return true
			}
			return false
		})
	})
}

func memStats() runtime.MemStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}
