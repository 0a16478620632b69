package bridge

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/config"
)

// Benchmarks of the bridge. Run them with
//
//	go test -run '^$' -bench . -benchtime 2s ./bridge/
//
// The python variants need the virtualenv (make setup) and skip without it.

// benchConfig never gives up and restarts after 1ms, so that restart
// times measure the bridge and the process, not the backoff.
func benchConfig() SupervisorConfig {
	return SupervisorConfig{
		StartTimeout:   config.Duration(30 * time.Second),
		HealthInterval: config.Duration(time.Second),
		BackoffInitial: config.Duration(time.Millisecond),
		BackoffMax:     config.Duration(time.Millisecond),
		MaxRestarts:    1 << 30,
	}
}

func benchSpecs(b *testing.B, run func(b *testing.B, spec PluginSpec)) {
	b.Run("go-fake", func(b *testing.B) { run(b, fakeSpec("normal")) })
	b.Run("python", func(b *testing.B) { run(b, pythonEchoSpec(b)) })
}

// BenchmarkEchoRoundTrip is one unary Echo call Go → plugin → Go with a
// 64-byte payload, over the plugin's unix socket, through the breaker.
func BenchmarkEchoRoundTrip(b *testing.B) {
	benchSpecs(b, func(b *testing.B, spec PluginSpec) {
		p := startPlugin(b, "bench", spec, benchConfig(), nil)
		ctx := context.Background()
		if err := p.Start(ctx); err != nil {
			b.Fatal(err)
		}
		client := p.Echo()
		req := &pluginv1.EchoRequest{Message: "ping", Payload: make([]byte, 64)}
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			if _, err := client.Echo(ctx, req); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		reportPercentiles(b, lat, "µs", time.Microsecond)
	})
}

// BenchmarkEchoParallel is Echo calls from GOMAXPROCS goroutines at once.
func BenchmarkEchoParallel(b *testing.B) {
	benchSpecs(b, func(b *testing.B, spec PluginSpec) {
		p := startPlugin(b, "bench", spec, benchConfig(), nil)
		ctx := context.Background()
		if err := p.Start(ctx); err != nil {
			b.Fatal(err)
		}
		client := p.Echo()
		start := time.Now()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			req := &pluginv1.EchoRequest{Message: "ping", Payload: make([]byte, 64)}
			for pb.Next() {
				if _, err := client.Echo(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	})
}

// BenchmarkColdStart is the time from creating a plugin to its first
// successful call: process launch, handshake, first health check, Echo.
func BenchmarkColdStart(b *testing.B) {
	benchSpecs(b, func(b *testing.B, spec PluginSpec) {
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			p, err := NewPlugin("bench", spec, benchConfig(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.Echo().Echo(context.Background(), &pluginv1.EchoRequest{Message: "first"}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			b.StopTimer()
			if err := p.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		reportPercentiles(b, lat, "ms", time.Millisecond)
	})
}

// BenchmarkRestart is the time from a SIGKILL of the plugin process to the
// next successful call, with a 1ms backoff.
func BenchmarkRestart(b *testing.B) {
	benchSpecs(b, func(b *testing.B, spec PluginSpec) {
		p := startPlugin(b, "bench", spec, benchConfig(), nil)
		ctx := context.Background()
		if err := p.Start(ctx); err != nil {
			b.Fatal(err)
		}
		client := p.Echo()
		req := &pluginv1.EchoRequest{Message: "ping"}
		var lat []time.Duration
		for b.Loop() {
			pid := p.Pid()
			start := time.Now()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				b.Fatal(err)
			}
			for {
				if err := p.WaitReady(ctx); err != nil {
					b.Fatal(err)
				}
				resp, err := client.Echo(ctx, req)
				if err == nil && int(resp.GetPid()) != pid {
					break
				}
			}
			lat = append(lat, time.Since(start))
		}
		reportPercentiles(b, lat, "ms", time.Millisecond)
	})
}

// reportPercentiles reports the median and 99th percentile of lat in unit.
func reportPercentiles(b *testing.B, lat []time.Duration, unit string, scale time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(scale)
	}
	b.ReportMetric(at(0.5), "p50-"+unit)
	b.ReportMetric(at(0.99), "p99-"+unit)
}
