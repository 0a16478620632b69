package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeRun is a step whose go test printed out.
func fakeRun(t *testing.T, id, out string) *stepRun {
	t.Helper()
	for _, s := range suite(false) {
		if s.id == id {
			r := &stepRun{step: s, out: out}
			r.parse()
			return r
		}
	}
	t.Fatalf("no step %q", id)
	return nil
}

func testEnv() runEnv {
	return runEnv{cpu: "Test CPU", cores: 2, memGiB: 8, goVersion: "go1.x", osArch: "linux/amd64",
		start: time.Date(2026, 12, 6, 20, 30, 0, 0, time.UTC), wall: 400 * time.Second, loadBefore: "1.00 1.00 1.00", dspyPython: "bin/bench-venv/bin/python"}
}

func TestReportGoalsMissed(t *testing.T) {
	runs := []*stepRun{
		fakeRun(t, "predict", "BenchmarkPredict-2 100 1 ns/op 60000 raw-ns/op 70000 predict-ns/op 1.17 x-raw 78000 stack-ns/op 1.30 stack-x-raw\n"+
			"BenchmarkPredict-2 100 1 ns/op 60000 raw-ns/op 70000 predict-ns/op 1.17 x-raw 72000 stack-ns/op 1.20 stack-x-raw\n"),
		fakeRun(t, "throughput", "BenchmarkThroughput/c=64-2 3 1 ns/op 0.96 raw-of-ideal 0.95 stack-of-ideal 0.99 stack-x-raw 100 raw-cpu-us/call 120 stack-cpu-us/call\n"+
			"BenchmarkThroughput/c=1024-2 3 1 ns/op 0.70 raw-of-ideal 0.60 stack-of-ideal 0.857 stack-x-raw 95 raw-cpu-us/call 110 stack-cpu-us/call\n"),
		fakeRun(t, "versus", "BenchmarkVersusDSPy-2 1 1 ns/op 100 predict-dspex-us 1500 predict-dspy-us 15 predict-dspy-x-dspex 1.2 boot-dspex-seq-s 1.1 boot-dspy-s 0.2 boot-dspex-s 5.5 boot-dspy-x-dspex 0.917 boot-dspy-x-dspex-seq 22 boot-dspex-calls 22 boot-dspy-calls 22 boot-dspex-seq-calls\n"),
	}
	rep := newReport(testEnv(), runs)
	md := rep.markdown(map[string]string{})
	for _, want := range []string{
		"**no**: 1 of 2 runs above 1.25, the worst by 0.050×", // 1.30 > 1.25
		"1.200–1.300× over 2 runs, mean 1.250×",
		"below 0.95: stack at C = 1024 0.857",
		"2 of 3 rows faster",
		"BootstrapFewShot, DSPEx sequential (Concurrency 1) as DSPy runs: DSPEx takes 1.09× DSPy's time",
		"Test CPU, 2 cores, 8.0 GiB memory",
		"DSPEX_BENCH_DSPY_PYTHON=bin/bench-venv/bin/python go test ./scripts/bench/benchreport -run '^$' -bench '^BenchmarkVersusDSPy$' -benchtime 5x",
		"2026-12-06 20:30 UTC",
		"C = 1024: the stack reached 0.857 of the floor (missed by 0.093)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Steps that did not run say why.
	if !strings.Contains(md, "## 5. Sandbox") || !strings.Contains(md, "Not measured in this run: not run.") {
		t.Error("a step that did not run is not marked")
	}
}

func TestReportGoalsMet(t *testing.T) {
	runs := []*stepRun{
		fakeRun(t, "predict", "BenchmarkPredict-2 100 1 ns/op 60000 raw-ns/op 62000 predict-ns/op 1.03 x-raw 66000 stack-ns/op 1.10 stack-x-raw\n"),
		fakeRun(t, "evalsweep", "BenchmarkEvaluateSweep/c=1024-2 3 1 ns/op 0.9 of-ideal 0.9 raw-of-ideal 1.0 x-raw 30000 heap-B/inflight 20000 stack-B/inflight\n"),
	}
	md := newReport(testEnv(), runs).markdown(nil)
	if strings.Contains(md, "**no**") || strings.Contains(md, "**Missed**") {
		t.Errorf("a goal is marked missed:\n%s", md)
	}
	if !strings.Contains(md, "30,000 + 20,000") {
		t.Error("memory per call in flight missing")
	}
}

func TestFailedStepIsMarked(t *testing.T) {
	r := fakeRun(t, "cache", "--- FAIL: BenchmarkCacheHit\n")
	r.err = os.ErrDeadlineExceeded
	md := newReport(testEnv(), []*stepRun{r}).markdown(nil)
	if !strings.Contains(md, "the benchmark failed") {
		t.Error("a failed step is not marked")
	}
}

func TestRawRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raw.txt")
	runs := []*stepRun{fakeRun(t, "dups", "BenchmarkCollapsedDuplicates-2 5 1 ns/op 256 callers 1 lm-calls 1.01 x-latency\n")}
	env := testEnv()
	if err := writeRaw(path, env, runs); err != nil {
		t.Fatal(err)
	}
	env2, runs2, err := readRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	if env2.cpu != env.cpu || !env2.start.Equal(env.start) || len(runs2) != 1 || runs2[0].command("x") != runs[0].command("x") {
		t.Fatalf("round trip changed the run: %+v %+v", env2, runs2)
	}
	if v, ok := newReport(env2, runs2).mean("dups", "BenchmarkCollapsedDuplicates", "lm-calls"); !ok || v != 1 {
		t.Errorf("lm-calls after the round trip: %v %v", v, ok)
	}
	if err := os.WriteFile(path, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readRaw(path); err == nil || !strings.Contains(err.Error(), "not a benchreport raw file") {
		t.Errorf("bad raw file: err = %v", err)
	}
}

func TestPlots(t *testing.T) {
	runs := []*stepRun{
		fakeRun(t, "predict", "BenchmarkPredict-2 100 1 ns/op 60000 raw-ns/op 62000 predict-ns/op 1.03 x-raw 66000 stack-ns/op 1.10 stack-x-raw\n"),
		fakeRun(t, "throughput", "BenchmarkThroughput/c=1-2 3 1 ns/op 0.99 raw-of-ideal 0.99 stack-of-ideal 1 stack-x-raw\nBenchmarkThroughput/c=64-2 3 1 ns/op 0.96 raw-of-ideal 0.95 stack-of-ideal 0.99 stack-x-raw\n"),
	}
	dir := t.TempDir()
	plots, err := newReport(testEnv(), runs).plots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(plots) != 2 || plots["overhead"] != "bench-overhead.png" || plots["throughput"] != "bench-throughput.png" {
		t.Fatalf("plots %v, want overhead and throughput only", plots)
	}
	for _, f := range plots {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
			t.Errorf("%s: not a PNG (%d bytes, %v)", f, len(b), err)
		}
	}
}
