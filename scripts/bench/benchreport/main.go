// Command benchreport runs DSPEx's benchmark suite — a fixed list of Go
// benchmarks, among them BenchmarkVersusDSPy and BenchmarkMIPRO, which run
// DSPy 3.4.1 beside DSPEx — and writes the performance report
// (docs/PERFORMANCE.md) and its plots (docs/img/bench-*.png). Every figure
// in the report comes with the machine, the command that reproduces it and
// the date. Run it from the repository root:
//
//	go run ./scripts/bench/benchreport [-quick] [-out FILE] [-dspy-python PYTHON] [-from LOG]
//
// `make bench` runs the whole suite into docs/; `make bench-quick` a subset
// with short benchtimes into a temporary directory. -from rebuilds a
// report from the raw output a previous run saved next to its report
// (bench-raw.txt), without running anything.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// A step is one `go test -bench` run of the suite.
type step struct {
	id        string
	pkg       string // ./core/module
	bench     string // the -bench pattern
	benchtime string
	count     int
	dspy      bool // gets $DSPEX_BENCH_DSPY_PYTHON
	quickEnv  bool // gets DSPEX_BENCH_QUICK=1
}

// command is the shell command that runs the step, from the repository
// root, as the report shows it.
func (s step) command(dspyPython string) string {
	var env []string
	if s.dspy {
		py := dspyPython
		if py == "" {
			py = "bin/bench-venv/bin/python"
		}
		env = append(env, "DSPEX_BENCH_DSPY_PYTHON="+py)
	}
	if s.quickEnv {
		env = append(env, "DSPEX_BENCH_QUICK=1")
	}
	cmd := fmt.Sprintf("go test %s -run '^$' -bench '%s' -benchtime %s", s.pkg, s.bench, s.benchtime)
	if s.count > 1 {
		cmd += fmt.Sprintf(" -count %d", s.count)
	}
	cmd += " -benchmem"
	if len(env) > 0 {
		cmd = strings.Join(env, " ") + " " + cmd
	}
	return cmd
}

// suite is the list of steps: the whole suite, or the quick subset.
func suite(quick bool) []step {
	if quick {
		return []step{
			{id: "predict", pkg: "./core/module", bench: "^BenchmarkPredict$", benchtime: "1s", count: 1},
			{id: "throughput", pkg: "./core/lm", bench: "^BenchmarkThroughput$/^c=(8|64)$", benchtime: "1x", count: 1},
			{id: "evalsweep", pkg: "./core/evaluate", bench: "^BenchmarkEvaluateSweep$/^c=(8|64)$", benchtime: "1x", count: 1},
			{id: "cache", pkg: "./core/lm", bench: "^BenchmarkCacheHit$", benchtime: "0.5s", count: 1},
			{id: "dups", pkg: "./core/lm", bench: "^BenchmarkCollapsedDuplicates$", benchtime: "2x", count: 1},
			{id: "versus", pkg: "./scripts/bench/benchreport", bench: "^BenchmarkVersusDSPy$", benchtime: "1x", count: 1, dspy: true, quickEnv: true},
		}
	}
	return []step{
		{id: "predict", pkg: "./core/module", bench: "^BenchmarkPredict$", benchtime: "3s", count: 5},
		{id: "throughput", pkg: "./core/lm", bench: "^BenchmarkThroughput$", benchtime: "5x", count: 1},
		{id: "evalsweep", pkg: "./core/evaluate", bench: "^BenchmarkEvaluateSweep$", benchtime: "5x", count: 1},
		{id: "heap", pkg: "./core/lm", bench: "^BenchmarkHeapPerInFlight$", benchtime: "1x", count: 1},
		{id: "cache", pkg: "./core/lm", bench: "^BenchmarkCacheHit$", benchtime: "2s", count: 1},
		{id: "dups", pkg: "./core/lm", bench: "^BenchmarkCollapsedDuplicates$", benchtime: "5x", count: 1},
		{id: "plugin-rtt", pkg: "./bridge", bench: "^BenchmarkEchoRoundTrip$", benchtime: "2s", count: 1},
		{id: "plugin-start", pkg: "./bridge", bench: "^Benchmark(ColdStart|Restart)$", benchtime: "20x", count: 1},
		{id: "sandbox", pkg: "./plugins/codeact", bench: "^BenchmarkInterpreter(Warm|ColdStart)$", benchtime: "10x", count: 1},
		{id: "optimizers", pkg: "./core/teleprompt", bench: "^BenchmarkOptimizers$", benchtime: "2x", count: 1},
		{id: "mipro", pkg: "./plugins/mipro", bench: "^BenchmarkMIPRO$", benchtime: "3x", count: 1, dspy: true},
		{id: "versus", pkg: "./scripts/bench/benchreport", bench: "^BenchmarkVersusDSPy$", benchtime: "5x", count: 1, dspy: true},
	}
}

// A stepRun is one step's outcome.
type stepRun struct {
	step
	out    string // go test's output
	err    error  // go test failed
	wall   time.Duration
	parsed *parsed
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run() error {
	quick := flag.Bool("quick", false, "run the quick subset (short benchtimes) instead of the whole suite")
	out := flag.String("out", "", "the report to write; its plots go to img/ beside it (default docs/PERFORMANCE.md, or a temporary directory with -quick)")
	dspyPython := flag.String("dspy-python", os.Getenv("DSPEX_BENCH_DSPY_PYTHON"), "a Python with dspy==3.4.1 for the side-by-side rows (its own virtualenv, never .venv); empty skips them")
	from := flag.String("from", "", "rebuild the report from the raw output (bench-raw.txt) a run saved, running nothing")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run it from the repository root (no go.mod here)")
	}
	if *out == "" {
		if *quick {
			dir, err := os.MkdirTemp("", "dspex-bench-quick-")
			if err != nil {
				return err
			}
			*out = filepath.Join(dir, "PERFORMANCE.md")
		} else {
			*out = filepath.Join("docs", "PERFORMANCE.md")
		}
	}
	if *dspyPython != "" {
		if _, err := os.Stat(*dspyPython); err != nil {
			return fmt.Errorf("-dspy-python %s: %w", *dspyPython, err)
		}
	}
	imgDir := filepath.Join(filepath.Dir(*out), "img")
	rawPath := filepath.Join(filepath.Dir(*out), "bench-raw.txt")
	if *out == filepath.Join("docs", "PERFORMANCE.md") {
		rawPath = filepath.Join("bin", "bench-raw.txt") // not committed
	}

	var env runEnv
	var runs []*stepRun
	if *from != "" {
		var err error
		rawPath = *from
		env, runs, err = readRaw(*from)
		if err != nil {
			return err
		}
	} else {
		env = machine()
		env.quick, env.dspyPython = *quick, *dspyPython
		env.start = time.Now().UTC()
		env.loadBefore = loadAvg()
		for _, s := range suite(*quick) {
			runs = append(runs, runStep(s, *dspyPython))
		}
		env.loadAfter = loadAvg()
		env.wall = time.Since(env.start)
		if err := os.MkdirAll(filepath.Dir(rawPath), 0o755); err != nil {
			return err
		}
		if err := writeRaw(rawPath, env, runs); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return err
	}
	rep := newReport(env, runs)
	plots, err := rep.plots(imgDir)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if err := os.WriteFile(*out, []byte(rep.markdown(plots)), 0o644); err != nil {
		return err
	}
	fmt.Printf("benchreport: wrote %s and %d plots in %s (raw output: %s) in %s\n", *out, len(plots), imgDir, rawPath, env.wall.Round(time.Second))
	var failed []string
	for _, r := range runs {
		if r.err != nil {
			failed = append(failed, r.id)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("steps failed: %s (the report marks them)", strings.Join(failed, ", "))
	}
	return nil
}

// runStep runs one step's go test, its output teed to stderr.
func runStep(s step, dspyPython string) *stepRun {
	args := []string{"test", s.pkg, "-run", "^$", "-bench", s.bench, "-benchtime", s.benchtime, "-count", fmt.Sprint(max(1, s.count)), "-benchmem", "-timeout", "20m"}
	fmt.Fprintf(os.Stderr, "== bench %s: %s\n", s.id, s.command(dspyPython))
	cmd := exec.Command("go", args...)
	cmd.Env = os.Environ()
	if s.dspy {
		py := dspyPython
		if py != "" {
			if abs, err := filepath.Abs(py); err == nil {
				py = abs
			}
		}
		cmd.Env = append(cmd.Env, "DSPEX_BENCH_DSPY_PYTHON="+py)
	}
	if s.quickEnv {
		cmd.Env = append(cmd.Env, "DSPEX_BENCH_QUICK=1")
	}
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	err := cmd.Run()
	r := &stepRun{step: s, out: buf.String(), err: err, wall: time.Since(start)}
	r.parse()
	return r
}

func (r *stepRun) parse() {
	p, err := parseBench(strings.NewReader(r.out))
	if err != nil && r.err == nil {
		r.err = err
	}
	if p == nil {
		p = &parsed{logs: map[string][]string{}}
	}
	r.parsed = p
}

// runEnv is the machine and the run's circumstances.
type runEnv struct {
	cpu                   string
	cores                 int
	memGiB                float64
	goVersion             string
	osArch                string
	start                 time.Time
	wall                  time.Duration
	loadBefore, loadAfter string
	quick                 bool
	dspyPython            string
}

func machine() runEnv {
	e := runEnv{cpu: "unknown", cores: runtime.NumCPU(), goVersion: runtime.Version(), osArch: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			var kb float64
			if _, err := fmt.Sscanf(line, "MemTotal: %g kB", &kb); err == nil {
				e.memGiB = kb / (1 << 20)
				break
			}
		}
	}
	return e
}

// loadAvg is the 1, 5 and 15 minute load averages ("" when unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
