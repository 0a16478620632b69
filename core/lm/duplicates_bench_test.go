package lm_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/lm"
)

// BenchmarkCollapsedDuplicates sends 256 identical calls at once through
// the default stack (no cache) to the simulator answering in 100 ms: the
// collapse layer makes one request and gives its answer to all 256. It
// reports the requests the simulator received per wave (lm-calls, ideally
// 1) and the wave's wall time over the latency (x-latency, ideally just
// above 1: the 255 duplicates wait for the one call and add nothing).
//
//	go test ./core/lm -run '^$' -bench BenchmarkCollapsedDuplicates -benchtime 5x
func BenchmarkCollapsedDuplicates(b *testing.B) {
	const (
		callers = 256
		latency = 100 * time.Millisecond
	)
	srv, client := sim(b, "100ms")
	stack := lm.NewStack(client, lm.ExecConfig{})
	round := 0
	wave := func() time.Duration {
		round++
		req := ask(fmt.Sprintf("round %d: the question everyone asks", round))
		var wg sync.WaitGroup
		start := time.Now()
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := stack.Complete(context.Background(), req); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	wave() // open the connection
	before := srv.Stats().Requests
	var wall time.Duration
	for b.Loop() {
		wall += wave()
	}
	n := float64(b.N)
	b.ReportMetric(float64(srv.Stats().Requests-before)/n, "lm-calls")
	b.ReportMetric(wall.Seconds()/n/latency.Seconds(), "x-latency")
	b.ReportMetric(callers, "callers")
}
