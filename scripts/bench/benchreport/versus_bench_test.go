package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/cache"
	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
)

// Settings of the side-by-side benchmark, shared with
// scripts/bench/dspy_side.py through its commands.
const (
	versusDSPyEnv   = "DSPEX_BENCH_DSPY_PYTHON" // a Python with dspy==3.4.1 (make bench makes bin/bench-venv)
	versusQuickEnv  = "DSPEX_BENCH_QUICK"       // "1": fewer calls per round
	versusScript    = "../dspy_side.py"
	versusTrain     = "../../../examples/capitals/train.jsonl"
	versusDev       = "../../../examples/capitals/dev.jsonl"
	versusEvalLat   = 100 * time.Millisecond
	versusEvalConc  = 64
	versusBootLat   = 50 * time.Millisecond
	versusBootDemos = 16
	// versusModel is the model name both sides send (dspy_side.py's MODEL):
	// one DSPy's price table knows, as a real deployment's would be.
	versusModel = "gpt-4o-mini"
)

// versusParams are the sizes of one run.
type versusParams struct {
	predictCalls, cacheCalls, evalN, bootRounds int
}

func versusSizes() versusParams {
	if os.Getenv(versusQuickEnv) == "1" {
		return versusParams{predictCalls: 100, cacheCalls: 300, evalN: 4 * versusEvalConc, bootRounds: 1}
	}
	return versusParams{predictCalls: 300, cacheCalls: 1000, evalN: 6 * versusEvalConc, bootRounds: 1}
}

// dspyProc is scripts/bench/dspy_side.py, running.
type dspyProc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *bytes.Buffer
	ver    string
}

func startDSPy(ctx context.Context, python string) (*dspyProc, error) {
	cmd := exec.CommandContext(ctx, python, versusScript)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &dspyProc{cmd: cmd, in: in, out: bufio.NewScanner(out), stderr: &bytes.Buffer{}}
	p.out.Buffer(make([]byte, 0, 64*1024), 1<<20)
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", python, versusScript, err)
	}
	var ready struct {
		Ready bool   `json:"ready"`
		DSPy  string `json:"dspy"`
	}
	if err := p.read(&ready); err != nil {
		p.close()
		return nil, err
	}
	p.ver = ready.DSPy
	return p, nil
}

// read decodes the script's next result line into v.
func (p *dspyProc) read(v any) error {
	if !p.out.Scan() {
		return fmt.Errorf("%s ended early: %v\n%s", versusScript, p.out.Err(), tailString(p.stderr.String(), 4000))
	}
	line := p.out.Bytes()
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(line, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s", versusScript, e.Error)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("%s: result %q: %w", versusScript, line, err)
	}
	return nil
}

// do sends one command and decodes its result.
func (p *dspyProc) do(cmd map[string]any, v any) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %w\n%s", versusScript, err, tailString(p.stderr.String(), 4000))
	}
	return p.read(v)
}

func (p *dspyProc) close() {
	p.in.Write([]byte(`{"op":"quit"}` + "\n"))
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// BenchmarkVersusDSPy puts DSPEx and DSPy 3.4.1 side by side on the same
// work against the same simulated LM (lmtest, in this process), the two
// systems alternating measurement by measurement so that drift of the
// machine's speed falls on both; DSPy runs in its own process
// (scripts/bench/dspy_side.py) from the Python $DSPEX_BENCH_DSPY_PYTHON
// names (skipped when unset). The program is Predict("question -> answer")
// in both, cache off unless said.
//
//   - predict: sequential calls to a simulator that answers at once;
//     per-call time of each and of a raw Go HTTP POST of a similar body
//     (the floor), and dspy-x-dspex (DSPy's time over DSPEx's).
//   - cache hits: the same call answered from the memory tier and from the
//     disk tier (DSPEx: SQLite with the memory tier off; DSPy: its disk
//     cache with the memory cache off), Predict included.
//   - evaluate: Evaluate over distinct questions at 100 ms latency with 64
//     at once (DSPy's num_threads=64), fraction of the ideal N·L/C.
//   - bootstrap: BootstrapFewShot (16 bootstrapped demos wanted) over the
//     capitals training set at 50 ms, wall time and the LM calls the
//     simulator received (cancelled ones included); DSPEx with its default
//     Concurrency (8) and sequentially (1).
//
// DSPEx runs with its default execution layers (lm.NewStack with a zero
// ExecConfig). Metrics ending in -dspy-x-dspex are above 1 when DSPEx is
// faster.
//
//	DSPEX_BENCH_DSPY_PYTHON=bin/bench-venv/bin/python go test ./scripts/bench/benchreport -run '^$' -bench BenchmarkVersusDSPy -benchtime 3x
func BenchmarkVersusDSPy(b *testing.B) {
	python := os.Getenv(versusDSPyEnv)
	if python == "" {
		b.Skipf("$%s is not set: no DSPy to compare with (make bench makes bin/bench-venv)", versusDSPyEnv)
	}
	if abs, err := filepath.Abs(python); err == nil && strings.Contains(python, "/") {
		python = abs
	}
	sizes := versusSizes()
	ds, err := lmtest.LoadDatasetFiles([]string{versusTrain, versusDev}, lmtest.DatasetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	train, err := example.LoadJSONL(versusTrain, "question")
	if err != nil {
		b.Fatal(err)
	}
	trainAbs, err := filepath.Abs(versusTrain)
	if err != nil {
		b.Fatal(err)
	}
	sim := func(lat time.Duration) *lmtest.Server {
		cfg := lmtest.Config{Dataset: ds, MaxInFlight: 4096, RecordLimit: -1}
		if lat > 0 {
			cfg.Latency = lmtest.Latency{Dist: lmtest.LatencyFixed, Value: lat}
		}
		s, err := lmtest.Start(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	instant, evalSim, bootSim := sim(0), sim(versusEvalLat), sim(versusBootLat)

	stackOver := func(s *lmtest.Server, cfg lm.ExecConfig) context.Context {
		client, err := openai.New(openai.Config{Model: versusModel, BaseURL: s.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
		if err != nil {
			b.Fatal(err)
		}
		return module.WithLM(context.Background(), lm.NewStack(client, cfg))
	}
	sig := signature.MustParse("question -> answer")

	py, err := startDSPy(b.Context(), python)
	if err != nil {
		b.Fatal(err)
	}
	defer py.close()
	b.Logf("DSPy %s from %s", py.ver, python)

	// The raw floor: a Go POST to the instant simulator of the prompt
	// Predict sends (ChatAdapter's messages, marshalled before the clock),
	// the response read whole.
	rawClient := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	rawBody := func(q string) []byte {
		msgs, err := (&adapter.ChatAdapter{}).Format(sig, nil, map[string]any{"question": q})
		if err != nil {
			b.Fatal(err)
		}
		body, err := json.Marshal(map[string]any{"model": versusModel, "messages": msgs})
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	rawCall := func(body []byte) {
		res, err := rawClient.Post(instant.URL()+"/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}

	var (
		mu  sync.Mutex
		sum = map[string]float64{}
	)
	add := func(k string, v float64) { mu.Lock(); sum[k] += v; mu.Unlock() }
	round := 0
	for b.Loop() {
		round++
		tag := fmt.Sprintf("r%d", round)

		// Per-call time, cache off.
		pred := module.NewPredict(sig)
		ctx := stackOver(instant, lm.ExecConfig{})
		if _, err := pred.Forward(ctx, module.Inputs{"question": tag + " warm-up"}); err != nil {
			b.Fatal(err)
		}
		rawCall(rawBody(tag + " warm-up"))
		var rawT, dspexT time.Duration
		for i := range sizes.predictCalls {
			q := fmt.Sprintf("%s question %d", tag, i)
			body := rawBody(q + " (raw)")
			t0 := time.Now()
			rawCall(body)
			t1 := time.Now()
			if _, err := pred.Forward(ctx, module.Inputs{"question": q}); err != nil {
				b.Fatal(err)
			}
			rawT += t1.Sub(t0)
			dspexT += time.Since(t1)
		}
		n := float64(sizes.predictCalls)
		add("raw-us", float64(rawT.Microseconds())/n)
		add("predict-dspex-us", float64(dspexT.Microseconds())/n)
		var pp, pr struct {
			PerCall float64 `json:"per_call_s"`
		}
		before := instant.Stats().Requests
		if err := py.do(map[string]any{"op": "predict", "api_base": instant.URL(), "n": sizes.predictCalls, "tag": "dspy " + tag}, &pp); err != nil {
			b.Fatal(err)
		}
		if got, want := instant.Stats().Requests-before, int64(sizes.predictCalls+1); got != want {
			b.Fatalf("DSPy's predict: %d calls reached the LM, want %d (its cache must be off)", got, want)
		}
		add("predict-dspy-us", pp.PerCall*1e6)

		// Cache hits, Predict included.
		for _, tier := range []string{"memory", "disk"} {
			opts := cache.Options{Path: filepath.Join(b.TempDir(), "c.db")}
			if tier == "disk" {
				opts.MemoryEntries = -1
			}
			c, err := cache.Open(context.Background(), opts)
			if err != nil {
				b.Fatal(err)
			}
			ctx := stackOver(instant, lm.ExecConfig{Cache: c.Store()})
			in := module.Inputs{"question": tag + " a question asked again and again"}
			for range 2 {
				if _, err := pred.Forward(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			before = instant.Stats().Requests
			t0 := time.Now()
			for range sizes.cacheCalls {
				if _, err := pred.Forward(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			d := time.Since(t0)
			if got := instant.Stats().Requests - before; got != 0 {
				b.Fatalf("%s tier: %d calls reached the LM, want 0", tier, got)
			}
			c.Close()
			add("cache-"+tier+"-dspex-us", float64(d.Microseconds())/float64(sizes.cacheCalls))
			before = instant.Stats().Requests
			if err := py.do(map[string]any{"op": "cache_hit", "api_base": instant.URL(), "n": sizes.cacheCalls, "tier": tier, "tag": "dspy " + tag}, &pr); err != nil {
				b.Fatal(err)
			}
			if got := instant.Stats().Requests - before; got != 1 {
				b.Fatalf("DSPy's %s cache: %d calls reached the LM, want 1 (the first)", tier, got)
			}
			add("cache-"+tier+"-dspy-us", pr.PerCall*1e6)
		}

		// Evaluate at 100 ms, 64 at once.
		devset := make([]example.Example, sizes.evalN)
		for i := range devset {
			devset[i] = example.New(map[string]any{"question": fmt.Sprintf("%s What is %d+%d?", tag, i, i), "answer": fmt.Sprint(2 * i)}).WithInputs("question")
		}
		ideal := time.Duration(sizes.evalN) * versusEvalLat / versusEvalConc
		ectx := stackOver(evalSim, lm.ExecConfig{})
		// Open the connections first, as DSPy's warm-up predict does
		// below for its client.
		if _, err := evaluate.Run(ectx, pred, devset[:versusEvalConc], metric.ExactMatch("answer"), evaluate.Options{Concurrency: versusEvalConc}); err != nil {
			b.Fatal(err)
		}
		for i := range devset {
			devset[i] = example.New(map[string]any{"question": fmt.Sprintf("%s eval What is %d+%d?", tag, i, i), "answer": fmt.Sprint(2 * i)}).WithInputs("question")
		}
		t0 := time.Now()
		res, err := evaluate.Run(ectx, pred, devset, metric.ExactMatch("answer"), evaluate.Options{Concurrency: versusEvalConc})
		ew := time.Since(t0)
		if err != nil || res.Scored != sizes.evalN {
			b.Fatalf("evaluate: %v (%d of %d scored)", err, res.Scored, sizes.evalN)
		}
		add("eval-dspex-s", ew.Seconds())
		add("eval-dspex-of-ideal", ideal.Seconds()/ew.Seconds())
		var er struct {
			Wall float64 `json:"wall_s"`
		}
		if err := py.do(map[string]any{"op": "evaluate", "api_base": evalSim.URL(), "n": sizes.evalN, "threads": versusEvalConc, "tag": "dspy " + tag}, &er); err != nil {
			b.Fatal(err)
		}
		add("eval-dspy-s", er.Wall)
		add("eval-dspy-of-ideal", ideal.Seconds()/er.Wall)

		// BootstrapFewShot at 50 ms.
		for range sizes.bootRounds {
			bctx := stackOver(bootSim, lm.ExecConfig{})
			for _, conc := range []int{8, 1} {
				opt := &teleprompt.BootstrapFewShot{Metric: metric.ExactMatch("answer"), MaxBootstrappedDemos: versusBootDemos, Concurrency: conc}
				before := bootSim.Stats().Requests
				t0 := time.Now()
				if _, err := opt.Compile(bctx, module.NewPredict(sig), train); err != nil {
					b.Fatal(err)
				}
				d := time.Since(t0)
				name := "boot-dspex"
				if conc == 1 {
					name = "boot-dspex-seq"
				}
				add(name+"-s", d.Seconds())
				add(name+"-calls", float64(bootSim.Stats().Requests-before))
			}
			var br struct {
				Wall  float64 `json:"wall_s"`
				Demos int     `json:"demos"`
			}
			before := bootSim.Stats().Requests
			if err := py.do(map[string]any{"op": "bootstrap", "api_base": bootSim.URL(), "train": trainAbs, "max_demos": versusBootDemos}, &br); err != nil {
				b.Fatal(err)
			}
			add("boot-dspy-s", br.Wall)
			add("boot-dspy-calls", float64(bootSim.Stats().Requests-before))
		}
		b.Logf("round %d: predict DSPEx %.0fµs DSPy %.0fµs raw %.0fµs | evaluate DSPEx %.3fs DSPy %.3fs", round,
			float64(dspexT.Microseconds())/n, pp.PerCall*1e6, float64(rawT.Microseconds())/n, ew.Seconds(), er.Wall)
	}
	rounds := float64(b.N)
	bootN := rounds * float64(sizes.bootRounds)
	for k, v := range sum {
		if strings.HasPrefix(k, "boot-") {
			b.ReportMetric(v/bootN, k)
		} else {
			b.ReportMetric(v/rounds, k)
		}
	}
	ratio := func(name, dspy, dspex string) {
		if sum[dspex] > 0 {
			b.ReportMetric(sum[dspy]/sum[dspex], name)
		}
	}
	ratio("predict-dspy-x-dspex", "predict-dspy-us", "predict-dspex-us")
	ratio("predict-dspex-x-raw", "predict-dspex-us", "raw-us")
	ratio("cache-memory-dspy-x-dspex", "cache-memory-dspy-us", "cache-memory-dspex-us")
	ratio("cache-disk-dspy-x-dspex", "cache-disk-dspy-us", "cache-disk-dspex-us")
	ratio("eval-dspy-x-dspex", "eval-dspy-s", "eval-dspex-s")
	ratio("boot-dspy-x-dspex", "boot-dspy-s", "boot-dspex-s")
	ratio("boot-dspy-x-dspex-seq", "boot-dspy-s", "boot-dspex-seq-s")
}
