package evaluate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// BenchmarkEvaluateSweep evaluates a Predict program through the default
// execution layers (lm.NewStack with a zero ExecConfig, as dspex builds
// it) at concurrency C = 1, 8, 64, 256, 1024 over N = 4·C distinct
// questions, the simulator answering every call after 100 ms, alternating
// round by round with a raw floor: C goroutines posting the same number
// of requests with net/http to the same simulator, each the prompt Predict
// sends for a question (ChatAdapter's messages, marshalled before the clock). The ideal wall time is
// N·L/C = 0.4 s. It reports, for each C, the fraction of the ideal the
// evaluation reached (of-ideal), the floor's (raw-of-ideal), their ratio
// (x-raw, goal >= 0.95), and the live heap and goroutine-stack memory per
// call in flight (one more evaluation off the clock: once all C calls are
// in flight, after a garbage collection, over the level before it, divided
// by C; the simulator runs in this process, so its side of each request
// counts too: an upper bound), and the process CPU time per call of each
// side (the simulator's share included in both).
//
//	go test ./core/evaluate -run '^$' -bench BenchmarkEvaluateSweep -benchtime 3x
func BenchmarkEvaluateSweep(b *testing.B) {
	const (
		latency = 100 * time.Millisecond
		waves   = 4
	)
	for _, c := range []int{1, 8, 64, 256, 1024} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			n := waves * c
			srv, err := lmtest.Start(context.Background(), lmtest.Config{
				Latency: lmtest.Latency{Dist: lmtest.LatencyFixed, Value: latency}, MaxInFlight: 4096, RecordLimit: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			client, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
			if err != nil {
				b.Fatal(err)
			}
			ctx := module.WithLM(context.Background(), lm.NewStack(client, lm.ExecConfig{}))
			sig := signature.MustParse("question -> answer")
			prog := module.NewPredict(sig)
			m := metric.ExactMatch("answer")
			opts := evaluate.Options{Concurrency: c}

			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.MaxIdleConns, tr.MaxIdleConnsPerHost = c, c
			raw := &http.Client{Transport: tr}
			// The floor posts the prompt Predict sends (ChatAdapter's
			// messages for the same question), written before the clock.
			rawBodies := func(round int) [][]byte {
				bodies := make([][]byte, n)
				for i := range bodies {
					msgs, err := (&adapter.ChatAdapter{}).Format(sig, nil, map[string]any{"question": fmt.Sprintf("round %d raw: what is %d+%d?", round, i, i)})
					if err != nil {
						b.Fatal(err)
					}
					bodies[i], err = json.Marshal(map[string]any{"model": lmtest.DefaultModel, "messages": msgs})
					if err != nil {
						b.Fatal(err)
					}
				}
				return bodies
			}
			rawRun := func(bodies [][]byte) time.Duration {
				var next atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				for range c {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1) - 1
							if i >= int64(n) {
								return
							}
							res, err := raw.Post(srv.URL()+"/chat/completions", "application/json", bytes.NewReader(bodies[i]))
							if err != nil {
								b.Error(err)
								return
							}
							io.Copy(io.Discard, res.Body)
							res.Body.Close()
						}
					}()
				}
				wg.Wait()
				return time.Since(start)
			}
			devset := func(round int) []example.Example {
				d := make([]example.Example, n)
				for i := range d {
					d[i] = example.New(map[string]any{"question": fmt.Sprintf("round %d: what is %d+%d?", round, i, i), "answer": fmt.Sprint(2 * i)}).WithInputs("question")
				}
				return d
			}
			evalRun := func(d []example.Example) time.Duration {
				start := time.Now()
				res, err := evaluate.Run(ctx, prog, d, m, opts)
				if err != nil || res.Scored != n {
					b.Fatalf("%v (%d of %d scored)", err, res.Scored, n)
				}
				return time.Since(start)
			}
			// memory runs one more evaluation off the clock and, once all c
			// calls are in flight at the simulator, collects garbage and
			// reads the live heap and the goroutine stacks.
			memory := func() (heap, stack float64) {
				d := devset(-2)
				runtime.GC()
				heap0, stack0 := memNow()
				done := make(chan struct{})
				probed := make(chan struct{})
				go func() {
					defer close(probed)
					for {
						select {
						case <-done:
							return
						case <-time.After(time.Millisecond):
						}
						if srv.Stats().InFlight >= int64(c) {
							runtime.GC()
							h, s := memNow()
							heap, stack = (h-heap0)/float64(c), (s-stack0)/float64(c)
							return
						}
					}
				}()
				evalRun(d)
				close(done)
				<-probed
				return heap, stack
			}
			// Warm both: connections, buffers.
			rawRun(rawBodies(-1))
			evalRun(devset(-1))
			var rawWall, evalWall, rawCPU, evalCPU time.Duration
			round := 0
			for b.Loop() {
				round++
				bodies := rawBodies(round)
				cpu0 := cpuTime()
				rawWall += rawRun(bodies)
				cpu1 := cpuTime()
				d := devset(round)
				cpu2 := cpuTime()
				evalWall += evalRun(d)
				rawCPU, evalCPU = rawCPU+cpu1-cpu0, evalCPU+cpuTime()-cpu2
			}
			heap, stack := memory()
			rounds := float64(b.N)
			ideal := float64(waves) * latency.Seconds() * rounds
			b.ReportMetric(ideal/evalWall.Seconds(), "of-ideal")
			b.ReportMetric(ideal/rawWall.Seconds(), "raw-of-ideal")
			b.ReportMetric(rawWall.Seconds()/evalWall.Seconds(), "x-raw")
			calls := float64(n) * rounds
			b.ReportMetric(float64(rawCPU.Microseconds())/calls, "raw-cpu-us/call")
			b.ReportMetric(float64(evalCPU.Microseconds())/calls, "cpu-us/call")
			b.ReportMetric(heap, "heap-B/inflight")
			b.ReportMetric(stack, "stack-B/inflight")
		})
	}
}

var memSamples = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}

// memNow is the live heap objects' and goroutine stacks' bytes now.
func memNow() (heap, stack float64) {
	s := make([]metrics.Sample, len(memSamples))
	copy(s, memSamples)
	metrics.Read(s)
	return float64(s[0].Value.Uint64()), float64(s[1].Value.Uint64())
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
