package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/dspex/dspex/core/module
cpu: AMD EPYC
BenchmarkPredict-2   	   12345	    180000 ns/op	  62000 predict-ns/op	  1.21 x-raw	   35000 B/op	     338 allocs/op
BenchmarkThroughput/c=64-2         	       3	 900000000 ns/op	         0.9580 raw-of-ideal
--- BENCH: BenchmarkVersusDSPy-2
    versus_bench_test.go:219: DSPy 3.4.1 from /x/python
    versus_bench_test.go:372: round 1: predict
--- SKIP: BenchmarkMIPRO
    bench_test.go:12: $DSPEX_BENCH_DSPY_PYTHON is not set
BenchmarkOdd-2 1 2 ns/op extra
PASS
ok  	github.com/dspex/dspex/core/module	5.611s
`

func TestParseBench(t *testing.T) {
	p, err := parseBench(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.results) != 2 {
		t.Fatalf("got %d results, want 2: %+v", len(p.results), p.results)
	}
	r := p.results[0]
	if r.name != "BenchmarkPredict" || r.n != 12345 || r.metrics["x-raw"] != 1.21 || r.metrics["allocs/op"] != 338 {
		t.Errorf("first result %+v", r)
	}
	if p.results[1].name != "BenchmarkThroughput/c=64" || p.results[1].metrics["raw-of-ideal"] != 0.958 {
		t.Errorf("second result %+v", p.results[1])
	}
	if len(p.skips) != 1 || p.skips[0].name != "BenchmarkMIPRO" || !strings.Contains(p.skips[0].reason, "not set") {
		t.Errorf("skips %+v", p.skips)
	}
	if logs := p.logs["BenchmarkVersusDSPy"]; len(logs) != 2 || logs[1] != "round 1: predict" {
		t.Errorf("logs %q", logs)
	}
}

func TestParseBenchRejectsNonFinite(t *testing.T) {
	for _, v := range []string{"NaN", "+Inf", "-Inf"} {
		_, err := parseBench(strings.NewReader("BenchmarkX-2 1 " + v + " x-raw\n"))
		if err == nil || !strings.Contains(err.Error(), "x-raw") {
			t.Errorf("%s: err = %v, want one naming the metric", v, err)
		}
	}
}

func TestTrimProcs(t *testing.T) {
	for in, want := range map[string]string{"BenchmarkA-2": "BenchmarkA", "BenchmarkA/c=8-16": "BenchmarkA/c=8", "BenchmarkA": "BenchmarkA", "BenchmarkA/x-y": "BenchmarkA/x-y"} {
		if got := trimProcs(in); got != want {
			t.Errorf("trimProcs(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseBench(f *testing.F) {
	f.Add(sample)
	f.Add("BenchmarkX-2 1 1e400 ns/op\n")
	f.Add("--- SKIP: BenchmarkY\n    a.go:1: why\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseBench(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, r := range p.results {
			if !strings.HasPrefix(r.name, "Benchmark") || r.n < 0 {
				t.Fatalf("bad result %+v", r)
			}
		}
	})
}
