package mipro

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/plugins/sampler"
	"github.com/dspex/dspex/plugins/sampler/samplertest"
)

// The benchmark's settings, shared with scripts/bench/dspy_mipro.py's
// command line: MIPROv2 auto light, seed 9, the first benchValset dev
// examples as the validation set (over 50, so trials run on minibatches
// of 35 as in DSPy), 16 evaluation threads (DSPEx's default Concurrency;
// DSPy's default is 8, so the script is given 16), the simulator answering
// every call in 50 ms.
const (
	benchLatency    = 50 * time.Millisecond
	benchValset     = 60
	benchSeed       = 9
	benchThreads    = 16
	benchInFlight   = 5 // TrialsInFlight of the concurrent variant: one batch per full-evaluation step
	benchDSPyEnv    = "DSPEX_BENCH_DSPY_PYTHON"
	benchDSPyScript = "scripts/bench/dspy_mipro.py"
	benchProposer   = "scripts/bench/proposer.yaml"
)

// timedSampler is a Sampler that measures the wall time during which at
// least one call to the plugin is outstanding (with trials in flight,
// overlapping calls count once), so that busy/wall is the share of the
// run spent waiting on the plugin.
type timedSampler struct {
	Sampler
	mu     sync.Mutex
	active int
	since  time.Time
	busy   time.Duration
	calls  int
	// per operation: total time and calls ("ask", "tell", ...)
	opTime  map[string]time.Duration
	opCalls map[string]int
}

func (s *timedSampler) enter() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == 0 {
		s.since = time.Now()
	}
	s.active++
	s.calls++
	return time.Now()
}

func (s *timedSampler) leave(op string, start time.Time) {
	d := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 {
		s.busy += time.Since(s.since)
	}
	if s.opTime == nil {
		s.opTime, s.opCalls = map[string]time.Duration{}, map[string]int{}
	}
	s.opTime[op] += d
	s.opCalls[op]++
}

// mean is op's mean call time in milliseconds.
func (s *timedSampler) mean(op string) float64 {
	if s.opCalls[op] == 0 {
		return 0
	}
	return ms(s.opTime[op]) / float64(s.opCalls[op])
}

func (s *timedSampler) CreateStudy(ctx context.Context, cfg sampler.StudyConfig) (string, error) {
	defer s.leave("create", s.enter())
	return s.Sampler.CreateStudy(ctx, cfg)
}

func (s *timedSampler) Ask(ctx context.Context, study string) (sampler.Trial, error) {
	defer s.leave("ask", s.enter())
	return s.Sampler.Ask(ctx, study)
}

func (s *timedSampler) Tell(ctx context.Context, study string, number int64, value float64, state sampler.State) error {
	defer s.leave("tell", s.enter())
	return s.Sampler.Tell(ctx, study, number, value, state)
}

func (s *timedSampler) Replay(ctx context.Context, study string, trials []sampler.PastTrial) (int64, error) {
	defer s.leave("replay", s.enter())
	return s.Sampler.Replay(ctx, study, trials)
}

func (s *timedSampler) Rebuild(ctx context.Context, cfg sampler.StudyConfig, history []sampler.PastTrial) error {
	defer s.leave("rebuild", s.enter())
	return s.Sampler.Rebuild(ctx, cfg, history)
}

// AskAfter is an ask (carrying the tells and replays before it).
func (s *timedSampler) AskAfter(ctx context.Context, study string, before []sampler.Op) (sampler.Trial, error) {
	defer s.leave("ask", s.enter())
	return s.Sampler.(FusedSampler).AskAfter(ctx, study, before)
}

// ReplayAfter is a replay (carrying the tells and replays before it).
func (s *timedSampler) ReplayAfter(ctx context.Context, study string, before []sampler.Op, trials []sampler.PastTrial) (int64, error) {
	defer s.leave("replay", s.enter())
	return s.Sampler.(FusedSampler).ReplayAfter(ctx, study, before, trials)
}

var _ FusedSampler = (*timedSampler)(nil)

// plainSampler hides a FusedSampler's fused calls: the search then makes
// each tell and replay as a call of its own (the benchmark's unfused run).
type plainSampler struct{ Sampler }

// procTimes is a process's CPU time and the time its threads waited for a
// CPU (run queue), summed over its threads from /proc/<pid>/task/*/schedstat
// (nanoseconds); ok is false where that cannot be read.
func procTimes(pid int) (cpu, wait time.Duration, ok bool) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, 0, false
	}
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		var run, queued int64
		if _, err := fmt.Sscan(string(data), &run, &queued); err != nil {
			return 0, 0, false
		}
		cpu += time.Duration(run)
		wait += time.Duration(queued)
	}
	return cpu, wait, true
}

// benchRun is one optimization's figures.
type benchRun struct {
	wall, plugin time.Duration
	lmCalls      int64 // requests the simulator received, cancelled ones included
	samplerCalls int
	ask, tell    float64 // mean sampler call times, ms
	score        float64
	// The plugin process's CPU time during the run, and the time its
	// threads waited for a CPU (the machine's load, seen by the plugin).
	pluginCPU, pluginWait time.Duration
}

// BenchmarkMIPRO runs a fixed MIPROv2 (auto light, seed 9) on the bundled
// task against one simulator answering in 50 ms, with the real sampler
// plugin, and reports per run: the wall time of Compile (the plugin is
// started before the clock), the LM calls the simulator received, and the
// wall time spent inside sampler plugin calls, alone and as a share of the
// wall time (goal < 1%) — for TrialsInFlight 1 (DSPy's sequence) and
// benchInFlight; plugin-% is the sequential run's, whose tells ride on the
// next asks (FusedSampler). Each round also runs the sequential search
// with each tell and replay a call of its own (unfused-plugin-%, the same
// measure), so that the two are compared under the same load; and since a
// plugin call's wall time is mostly the machine's scheduling, the log line
// gives the load average, and plugin-cpu-ms and plugin-runq-ms are the
// plugin process's CPU time during the fused run and the time its threads
// waited for a CPU (from /proc/<pid>/task/*/schedstat; its CPU time
// includes what it does between calls, gRPC's and the health checks'
// wake-ups). When $DSPEX_BENCH_DSPY_PYTHON names a Python with
// dspy==3.4.1 and optuna (`make bench-mipro` builds one), each round also
// runs DSPy's MIPROv2 with the same settings on the same simulator
// (scripts/bench/dspy_mipro.py), alternating with the DSPEx runs, and
// reports its wall time, LM calls, the share of it spent inside Optuna
// (in DSPy's process: the counterpart of plugin-%) and the ratio of the
// wall times (dspy-x-dspex, above 1 when DSPEx is faster). Each round is
// logged.
//
//	go test ./plugins/mipro -run '^$' -bench BenchmarkMIPRO -benchtime 3x
func BenchmarkMIPRO(b *testing.B) {
	wd, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(wd, "..", "..")
	train, dev, _, _ := capitals(b)
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	script, err := lmtest.LoadScript(filepath.Join(root, benchProposer))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := lmtest.Start(context.Background(), lmtest.Config{
		Dataset: ds,
		Script:  script,
		Latency: lmtest.Latency{Dist: lmtest.LatencyFixed, Value: benchLatency},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()

	client, plugin, err := sampler.Open(samplertest.Host(b), "")
	if err != nil {
		b.Fatal(err)
	}
	// The plugin's first study imports Optuna and its TPE sampler (a third
	// of a second here); DSPy's script imports Optuna before its clock
	// starts too, so warm the plugin up off the clock.
	warm := time.Now()
	if err := warmSampler(b.Context(), client); err != nil {
		b.Fatal(err)
	}
	warmup := time.Since(warm)
	rtt, err := idleRoundTrip(b.Context(), client)
	if err != nil {
		b.Fatal(err)
	}
	// The plugin's CPU time while no call is made: what its CPU time during
	// a run holds besides the calls.
	idle := "its CPU time cannot be read from /proc/<pid>/task/*/schedstat (plugin-cpu-ms is 0)"
	if cpu0, _, ok := procTimes(plugin.Pid()); ok {
		time.Sleep(time.Second)
		cpu1, _, _ := procTimes(plugin.Pid())
		idle = fmt.Sprintf("idle, it uses %.2fms of CPU per second", ms(cpu1-cpu0))
	}
	b.Logf("sampler plugin: warm-up (first study, ask, tell) %.1fms; a call after 100ms idle (Best, median of 9) %.2fms; %s", ms(warmup), rtt, idle)
	dspyPython := os.Getenv(benchDSPyEnv)

	student := module.NewPredict(signature.MustParse("question -> answer"))
	runs := 0
	dspex := func(inFlight int, fused bool) benchRun {
		runs++
		provider, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
		if err != nil {
			b.Fatal(err)
		}
		// The default execution layers, no cache.
		ctx := module.WithLM(context.Background(), lm.NewStack(provider, lm.ExecConfig{}))
		timed := &timedSampler{Sampler: client}
		var s Sampler = timed
		if !fused {
			s = plainSampler{timed}
		}
		opt := New(Config{
			Metric:         metric.ExactMatch("answer"),
			Sampler:        s,
			StudyID:        fmt.Sprintf("bench-%d", runs),
			Auto:           Light,
			Seed:           benchSeed,
			Concurrency:    benchThreads,
			TrialsInFlight: inFlight,
		})
		before := srv.Stats().Requests
		pid := plugin.Pid()
		cpu0, wait0, _ := procTimes(pid)
		start := time.Now()
		res, err := opt.Compile(ctx, student, train, dev[:benchValset])
		wall := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		cpu1, wait1, ok := procTimes(pid)
		r := benchRun{wall: wall, plugin: timed.busy, lmCalls: srv.Stats().Requests - before, samplerCalls: timed.calls,
			ask: timed.mean("ask"), tell: timed.mean("tell"), score: res.Score}
		if ok && plugin.Pid() == pid {
			r.pluginCPU, r.pluginWait = cpu1-cpu0, wait1-wait0
		}
		return r
	}
	dspy := func() benchRun {
		before := srv.Stats().Requests
		r, err := runDSPy(b.Context(), dspyPython, root, srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		r.lmCalls = srv.Stats().Requests - before
		return r
	}

	var seq, unfused, conc, py benchRun
	add := func(sum *benchRun, r benchRun) {
		sum.wall += r.wall
		sum.plugin += r.plugin
		sum.lmCalls += r.lmCalls
		sum.samplerCalls += r.samplerCalls
		sum.ask += r.ask
		sum.tell += r.tell
		sum.score += r.score
		sum.pluginCPU += r.pluginCPU
		sum.pluginWait += r.pluginWait
	}
	var load []string
	// One log line per round: the testing package keeps only a benchmark's
	// first ten lines of log.
	round := 0
	for b.Loop() {
		round++
		s := dspex(1, true)
		add(&seq, s)
		line := fmt.Sprintf("round %d (load %s) | DSPEx %.3fs, %d LM calls, plugin %.1fms in %d calls = %.2f%% (ask carrying a tell %.2fms; plugin CPU %.1fms, waited for a CPU %.1fms), score %.1f",
			round, loadAvg(), s.wall.Seconds(), s.lmCalls, ms(s.plugin), s.samplerCalls, share(s), s.ask, ms(s.pluginCPU), ms(s.pluginWait), s.score)
		load = append(load, loadAvg())
		u := dspex(1, false)
		add(&unfused, u)
		line += fmt.Sprintf(" | unfused %.3fs, plugin %.1fms in %d calls = %.2f%% (ask %.2fms, tell %.2fms; plugin CPU %.1fms)",
			u.wall.Seconds(), ms(u.plugin), u.samplerCalls, share(u), u.ask, u.tell, ms(u.pluginCPU))
		if dspyPython != "" {
			d := dspy()
			add(&py, d)
			line += fmt.Sprintf(" | DSPy %.3fs, %d LM calls, Optuna %.1fms in %d calls = %.2f%%, score %.1f | DSPy/DSPEx %.2f",
				d.wall.Seconds(), d.lmCalls, ms(d.plugin), d.samplerCalls, share(d), d.score, d.wall.Seconds()/s.wall.Seconds())
		}
		c := dspex(benchInFlight, true)
		add(&conc, c)
		line += fmt.Sprintf(" | DSPEx %d in flight %.3fs, %d LM calls, plugin %.1fms = %.2f%%",
			benchInFlight, c.wall.Seconds(), c.lmCalls, ms(c.plugin), share(c))
		b.Log(line)
	}
	n := float64(b.N)
	b.ReportMetric(seq.wall.Seconds()/n, "wall-s")
	b.ReportMetric(float64(seq.lmCalls)/n, "lm-calls")
	b.ReportMetric(ms(seq.plugin)/n, "plugin-ms")
	b.ReportMetric(share(seq), "plugin-%")
	b.ReportMetric(seq.ask/n, "ask-ms")
	b.ReportMetric(unfused.ask/n, "unfused-ask-ms")
	b.ReportMetric(unfused.tell/n, "unfused-tell-ms")
	b.ReportMetric(rtt, "idle-rtt-ms")
	b.ReportMetric(float64(seq.samplerCalls)/n, "plugin-calls")
	b.ReportMetric(ms(seq.pluginCPU)/n, "plugin-cpu-ms")
	b.ReportMetric(ms(seq.pluginWait)/n, "plugin-runq-ms")
	b.ReportMetric(share(unfused), "unfused-plugin-%")
	b.ReportMetric(float64(unfused.samplerCalls)/n, "unfused-plugin-calls")
	b.Logf("load average (1 min) at each round: %s", strings.Join(load, ", "))
	b.ReportMetric(conc.wall.Seconds()/n, "inflight-wall-s")
	b.ReportMetric(float64(conc.lmCalls)/n, "inflight-lm-calls")
	b.ReportMetric(share(conc), "inflight-plugin-%")
	if dspyPython != "" {
		b.ReportMetric(py.wall.Seconds()/n, "dspy-wall-s")
		b.ReportMetric(float64(py.lmCalls)/n, "dspy-lm-calls")
		b.ReportMetric(share(py), "dspy-optuna-%")
		b.ReportMetric(py.wall.Seconds()/seq.wall.Seconds(), "dspy-x-dspex")
	}
}

// warmSampler creates a throwaway study and runs one trial through it.
func warmSampler(ctx context.Context, s Sampler) error {
	id, err := s.CreateStudy(ctx, sampler.StudyConfig{ID: "bench-warmup", Space: []sampler.Param{sampler.Indices("p", 3)}, Seed: benchSeed})
	if err != nil {
		return err
	}
	tr, err := s.Ask(ctx, id)
	if err != nil {
		return err
	}
	return s.Tell(ctx, id, tr.Number, 1, sampler.Complete)
}

// idleRoundTrip is the median time of the plugin's cheapest call (Best on
// the warm-up study) made after 100 ms of quiet, as MIPROv2's asks and
// tells come between evaluations: the transport's share of a call.
func idleRoundTrip(ctx context.Context, c *sampler.Client) (float64, error) {
	var times []float64
	for range 9 {
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		if _, _, err := c.Best(ctx, "bench-warmup"); err != nil {
			return 0, err
		}
		times = append(times, ms(time.Since(start)))
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadAvg is the machine's 1-minute load average (/proc/loadavg), or "?".
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// share is the plugin's share of the wall time, in percent.
func share(r benchRun) float64 { return 100 * float64(r.plugin) / float64(r.wall) }

// runDSPy runs scripts/bench/dspy_mipro.py with python against the
// simulator at baseURL and reads its result line.
func runDSPy(ctx context.Context, python, root, baseURL string) (benchRun, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join(root, benchDSPyScript),
		"--api-base", baseURL,
		"--valset-size", fmt.Sprint(benchValset),
		"--seed", fmt.Sprint(benchSeed),
		"--num-threads", fmt.Sprint(benchThreads),
		"--auto", string(Light))
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return benchRun{}, fmt.Errorf("%s %s: %w\n%s", python, benchDSPyScript, err, tail(stderr.String(), 4000))
	}
	const prefix = "DSPY_MIPRO "
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		var out struct {
			Wall   float64  `json:"wall_s"`
			Optuna float64  `json:"optuna_s"`
			Calls  int      `json:"optuna_calls"`
			Score  *float64 `json:"score"`
		}
		if err := json.Unmarshal([]byte(line), &out); err != nil {
			return benchRun{}, fmt.Errorf("%s: result line %q: %w", benchDSPyScript, line, err)
		}
		r := benchRun{
			wall:         time.Duration(out.Wall * float64(time.Second)),
			plugin:       time.Duration(out.Optuna * float64(time.Second)),
			samplerCalls: out.Calls,
		}
		if out.Score != nil {
			r.score = *out.Score
		}
		return r, nil
	}
	return benchRun{}, fmt.Errorf("%s printed no %q line:\n%s", benchDSPyScript, prefix, tail(stdout.String()+stderr.String(), 4000))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
