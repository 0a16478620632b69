package lm_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
)

// BenchmarkThroughput sends c concurrent callers (four calls each) to the
// simulated LM answering in 100ms, through the default stack
// (lm.NewStack with a zero ExecConfig over openai.Client) and through a raw
// net/http floor posting the same kind of body, the two alternating round
// by round in one run so that machine noise hits both. The ideal rate is
// c / 100ms. It reports, for each c, the fraction of the ideal each
// reached (stack-of-ideal, raw-of-ideal), their ratio (stack-x-raw, goal
// >= 0.95) and the process CPU time per call of each (the simulator runs in
// the same process, so both include its share; the difference is the
// framework's).
func BenchmarkThroughput(b *testing.B) {
	const (
		perCaller = 4
		latency   = 100 * time.Millisecond
	)
	for _, c := range []int{1, 8, 64, 256, 1024} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			l, _ := lmtest.ParseLatency("100ms")
			srv, err := lmtest.Start(context.Background(), lmtest.Config{Latency: l, MaxInFlight: 4096, RecordLimit: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			client, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
			if err != nil {
				b.Fatal(err)
			}
			stack := lm.NewStack(client, lm.ExecConfig{})
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.MaxIdleConns, tr.MaxIdleConnsPerHost = c, c
			raw := &http.Client{Transport: tr}
			url := srv.URL() + "/chat/completions"
			system := "Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (str):\nAll interactions will be structured in the following way, with the appropriate values filled in."
			rawCall := func(q string) error {
				body := fmt.Appendf(nil, `{"model":"dspex-sim","messages":[{"role":"system","content":%q},{"role":"user","content":%q}]}`, system, q)
				res, err := raw.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d", res.StatusCode)
				}
				return err
			}
			stackCall := func(q string) error {
				_, err := stack.Complete(context.Background(), &lm.Request{Messages: []lm.Message{
					{Role: lm.RoleSystem, Content: system}, {Role: lm.RoleUser, Content: q}}})
				return err
			}
			round := 0
			wave := func(call func(string) error) (time.Duration, time.Duration) {
				round++
				cpu0 := cpuTime()
				start := time.Now()
				var wg sync.WaitGroup
				for i := range c {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := range perCaller {
							if err := call(fmt.Sprintf("round %d caller %d call %d", round, i, k)); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				return time.Since(start), cpuTime() - cpu0
			}
			wave(rawCall) // warm both: connections, buffers
			wave(stackCall)
			var rawWall, stackWall, rawCPU, stackCPU time.Duration
			for b.Loop() {
				w, cpu := wave(rawCall)
				rawWall, rawCPU = rawWall+w, rawCPU+cpu
				w, cpu = wave(stackCall)
				stackWall, stackCPU = stackWall+w, stackCPU+cpu
			}
			ideal := float64(perCaller) * latency.Seconds() * float64(b.N)
			calls := float64(c * perCaller * b.N)
			b.ReportMetric(ideal/rawWall.Seconds(), "raw-of-ideal")
			b.ReportMetric(ideal/stackWall.Seconds(), "stack-of-ideal")
			b.ReportMetric(rawWall.Seconds()/stackWall.Seconds(), "stack-x-raw")
			b.ReportMetric(float64(rawCPU.Microseconds())/calls, "raw-cpu-us/call")
			b.ReportMetric(float64(stackCPU.Microseconds())/calls, "stack-cpu-us/call")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
