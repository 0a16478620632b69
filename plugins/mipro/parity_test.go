package mipro

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/plugins/sampler"
)

// dspyGolden is testdata/golden/mipro/mipro.json, written by
// gen_dspy_mipro.py beside it (DSPy 3.4.1's MIPROv2 against the simulator).
type dspyGolden struct {
	DSPyVersion   string `json:"dspy_version"`
	OptunaVersion string `json:"optuna_version"`
	Config        struct {
		Seed          int64 `json:"seed"`
		NumCandidates int   `json:"num_candidates"`
		NumTrials     int   `json:"num_trials"`
		MinibatchSize int   `json:"minibatch_size"`
		MaxBoot       int   `json:"max_bootstrapped_demos"`
		MaxLabeled    int   `json:"max_labeled_demos"`
	} `json:"config"`
	DatasetSummary string               `json:"dataset_summary"`
	DemoSets       [][][]map[string]any `json:"demo_sets"`
	Instructions   [][]string           `json:"instructions"`
	Trials         []dspyTrial          `json:"trials"`
	Best           struct {
		Score  float64        `json:"score"`
		Params map[string]int `json:"params"`
	} `json:"best"`
}

type dspyTrial struct {
	Number int64          `json:"number"`
	Kind   TrialKind      `json:"kind"`
	Params map[string]int `json:"params"`
	Score  float64        `json:"score"`
	// Minibatch are the valset indices scored, in rng.sample's order; nil
	// means the whole valset.
	Minibatch []int `json:"minibatch"`
}

// Golden task of gen_dspy_mipro.py: NTRAIN and NVAL.
const parityTrain, parityVal = 16, 20

// evalRecorder records the examples each evaluation scored: the metric
// notes every example, and each Tell (a sampled trial) or added trial (the
// baseline and full evaluations) closes an evaluation.
type evalRecorder struct {
	metric.Metric
	Sampler
	mu    sync.Mutex
	cur   []string
	evals [][]string
}

func (r *evalRecorder) Score(ctx context.Context, ex example.Example, pred *example.Prediction) (metric.Result, error) {
	r.mu.Lock()
	r.cur = append(r.cur, ex.String("question"))
	r.mu.Unlock()
	return r.Metric.Score(ctx, ex, pred)
}

func (r *evalRecorder) close() {
	r.mu.Lock()
	r.evals = append(r.evals, r.cur)
	r.cur = nil
	r.mu.Unlock()
}

func (r *evalRecorder) Tell(ctx context.Context, study string, n int64, v float64, s sampler.State) error {
	r.close()
	return r.Sampler.Tell(ctx, study, n, v, s)
}

func (r *evalRecorder) Replay(ctx context.Context, study string, trials []sampler.PastTrial) (int64, error) {
	r.close()
	return r.Sampler.Replay(ctx, study, trials)
}

func readDSPyGolden(t *testing.T) dspyGolden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "mipro", "mipro.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g dspyGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// parityRun runs MIPROv2 on the golden's task and settings with the
// continuous RNG (WithSamplerRNG), scoring with m and sampling with s; it
// returns the result and the valset.
func parityRun(t *testing.T, g dspyGolden, m metric.Metric, s Sampler, opts ...Option) (*Result, []example.Example) {
	t.Helper()
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := example.LoadJSONL(filepath.Join(taskDir, "dev.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	train, val := train[:parityTrain], dev[:parityVal]
	// `dspex mock-lm --dataset train.jsonl --dataset dev.jsonl`, as the script starts it.
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	model := newLM(t, lmtest.NewServer(t, lmtest.WithDataset(ds)))
	cfg := Config{
		Metric: m, Sampler: s, Auto: Off, NumCandidates: g.Config.NumCandidates, NumTrials: g.Config.NumTrials,
		MinibatchSize: g.Config.MinibatchSize, MaxBootstrappedDemos: g.Config.MaxBoot,
		MaxLabeledDemos: g.Config.MaxLabeled, Seed: g.Config.Seed,
		// One example at a time: the metric sees each minibatch in its order.
		Concurrency: 1,
	}
	ctx := module.WithLM(t.Context(), model)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	res, err := New(cfg, append([]Option{WithSamplerRNG(sampler.RNGContinuous)}, opts...)...).Compile(ctx, student, train, val)
	if err != nil {
		t.Fatal(err)
	}
	return res, val
}

// TestDSPyMIPROParity runs MIPROv2 as gen_dspy_mipro.py ran DSPy's: the
// same data, settings, seed and simulator, and the sampler plugin's TPE in
// rng=continuous mode. The demo sets, the instruction candidates, every
// trial (its parameters, the minibatch it was scored on, its score) and
// the program returned are DSPy's.
func TestDSPyMIPROParity(t *testing.T) {
	g := readDSPyGolden(t)
	c, p := pluginSampler(t) // skips without Python and Optuna
	// TPE's draws are Optuna's: another Optuna than the golden's may ask
	// other trials (the project pins optuna~=5.0 and tests 5.1.0).
	versions := "the plugin's Optuna is unknown"
	if info, err := p.Info(t.Context()); err == nil {
		versions = fmt.Sprintf("golden from DSPy %s with Optuna %s; the plugin runs Optuna %s", g.DSPyVersion, g.OptunaVersion, info.GetDetails()["optuna"])
	}
	rec := &evalRecorder{Metric: metric.ExactMatch("answer"), Sampler: c}
	res, val := parityRun(t, g, rec, rec)

	t.Run("dataset summary", func(t *testing.T) {
		if res.DatasetSummary != g.DatasetSummary {
			t.Errorf("summary %q, DSPy's %q (%s)", res.DatasetSummary, g.DatasetSummary, res.SummaryError)
		}
	})
	t.Run("demo sets", func(t *testing.T) {
		got := make([][][]map[string]any, len(res.DemoSets))
		for i, sets := range res.DemoSets {
			for _, set := range sets {
				demos := []map[string]any{}
				for _, d := range set {
					demos = append(demos, d.Map())
				}
				got[i] = append(got[i], demos)
			}
		}
		if diff := cmp.Diff(g.DemoSets, got); diff != "" {
			t.Errorf("demo sets differ from DSPy's (-DSPy +DSPEx):\n%s", diff)
		}
	})
	t.Run("instructions", func(t *testing.T) {
		if diff := cmp.Diff(g.Instructions, res.Instructions); diff != "" {
			t.Errorf("instruction candidates differ from DSPy's (-DSPy +DSPEx):\n%s", diff)
		}
	})
	t.Run("trials", func(t *testing.T) {
		index := map[string]int{}
		for i, e := range val {
			index[e.String("question")] = i
		}
		if len(rec.evals) != len(res.Trials) {
			t.Fatalf("%d evaluations recorded for %d trials", len(rec.evals), len(res.Trials))
		}
		// The baseline's evaluation follows the bootstraps' metric calls.
		if n := len(rec.evals[0]); n > len(val) {
			rec.evals[0] = rec.evals[0][n-len(val):]
		}
		got := make([]dspyTrial, len(res.Trials))
		for i, tr := range res.Trials {
			got[i] = dspyTrial{Number: tr.Number, Kind: tr.Kind, Params: tr.Params, Score: tr.Score}
			if tr.Minibatch {
				for _, q := range rec.evals[i] {
					got[i].Minibatch = append(got[i].Minibatch, index[q])
				}
			} else if n := len(rec.evals[i]); n != len(val) {
				t.Errorf("trial %d: a full evaluation scored %d examples, want %d", tr.Number, n, len(val))
			}
			if tr.Error != "" {
				t.Errorf("trial %d: %s", tr.Number, tr.Error)
			}
		}
		if diff := cmp.Diff(g.Trials, got); diff != "" {
			t.Errorf("trial sequence differs from DSPy's (%s) (-DSPy +DSPEx):\n%s", versions, diff)
		}
	})
	// The recorder is a plain Sampler (it closes an evaluation at each
	// tell): the run above made each tell as a call of its own. With the
	// client itself, a FusedSampler, the tells ride on the next asks.
	t.Run("fused calls", func(t *testing.T) {
		want := make([]string, len(g.Trials))
		for i, tr := range g.Trials {
			want[i] = fmt.Sprintf("%d %s %v %v", tr.Number, tr.Kind, tr.Params, tr.Score)
		}
		fused, _ := parityRun(t, g, metric.ExactMatch("answer"), c)
		if diff := cmp.Diff(want, trialLines(fused)); diff != "" {
			t.Errorf("with fused calls the trials differ from DSPy's (-DSPy +DSPEx):\n%s", diff)
		}
		if fused.Score != g.Best.Score {
			t.Errorf("best score %v, DSPy's %v", fused.Score, g.Best.Score)
		}
	})
	t.Run("best", func(t *testing.T) {
		if res.Score != g.Best.Score {
			t.Errorf("best score %v, DSPy's %v", res.Score, g.Best.Score)
		}
		p := res.Program.NamedPredictors()[0].Predictor
		got := fmt.Sprintf("%q with %d demos", p.Signature().Instructions(), len(p.Demos()))
		want := fmt.Sprintf("%q with %d demos", g.Instructions[0][g.Best.Params["0_predictor_instruction"]],
			len(g.DemoSets[0][g.Best.Params["0_predictor_demos"]]))
		if got != want {
			t.Errorf("best program %s, DSPy's %s", got, want)
		}
	})
}

// A parity run resumed from the log of an interrupted one: with the
// continuous RNG the logged sampled trials are asked again (and must come
// back as logged), so the sampler goes on with DSPy's sequence.
func TestDSPyMIPROParityResumed(t *testing.T) {
	g := readDSPyGolden(t)
	c, _ := pluginSampler(t)
	full, _ := parityRun(t, g, metric.ExactMatch("answer"), c)
	for _, cut := range []int{4, 9} {
		t.Run(fmt.Sprintf("after %d trials", cut), func(t *testing.T) {
			logged := full.Trials[:cut]
			res, _ := parityRun(t, g, metric.ExactMatch("answer"), c, func(cfg *Config) { cfg.Resume = logged })
			if len(res.Trials) != len(g.Trials) {
				t.Fatalf("%d trials, DSPy ran %d", len(res.Trials), len(g.Trials))
			}
			for i, tr := range res.Trials {
				want := g.Trials[i]
				if tr.Resumed != (i < cut) || tr.Kind != want.Kind || !cmp.Equal(tr.Params, want.Params) || tr.Score != want.Score {
					t.Errorf("trial %d: %s %v %v (resumed %v), DSPy's %s %v %v", i, tr.Kind, tr.Params, tr.Score, tr.Resumed,
						want.Kind, want.Params, want.Score)
				}
			}
		})
	}
}

// A SIGKILLed sampler plugin during the parity run: the supervisor
// restarts it, the continuous study is re-driven from the calls made so far
// (sampler.Redrive), and the run still asks and scores DSPy's trials.
func TestDSPyMIPROParityAfterKill(t *testing.T) {
	g := readDSPyGolden(t)
	want := make([]string, len(g.Trials))
	for i, tr := range g.Trials {
		want[i] = fmt.Sprintf("%d %s %v %v", tr.Number, tr.Kind, tr.Params, tr.Score)
	}
	for _, tc := range []struct {
		op string
		at int
	}{
		{"ask", 3},    // trial 3, while the sampler is still random
		{"ask", 11},   // trial 13, a TPE trial after two full evaluations
		{"tell", 9},   // trial 10, evaluated, not yet told
		{"replay", 2}, // the first full evaluation
	} {
		for _, mode := range killModes {
			t.Run(fmt.Sprintf("%s %d %s", tc.op, tc.at, mode), func(t *testing.T) {
				c, p := pluginSampler(t)
				k := &killer{Sampler: c, plugin: p, op: tc.op, at: tc.at}
				res, _ := parityRun(t, g, metric.ExactMatch("answer"), killSampler(mode, k, t))
				if k.killed != 1 || res.Rebuilds < 1 {
					t.Fatalf("killed %d times, %d rebuilds", k.killed, res.Rebuilds)
				}
				if diff := cmp.Diff(want, trialLines(res)); diff != "" {
					t.Errorf("after the kill the trials differ from DSPy's (-DSPy +DSPEx):\n%s", diff)
				}
			})
		}
	}
}

// With trials in flight the continuous study is re-driven as well: the
// asks of a batch before its tells, in the order they were made.
func TestContinuousKilledWithTrialsInFlight(t *testing.T) {
	g := readDSPyGolden(t)
	c, _ := pluginSampler(t)
	ref, _ := parityRun(t, g, metric.ExactMatch("answer"), c, WithTrialsInFlight(2))
	want := trialLines(ref)
	for _, tc := range []struct {
		op string
		at int
	}{{"ask", 8}, {"tell", 5}} {
		for _, mode := range killModes {
			t.Run(fmt.Sprintf("%s %d %s", tc.op, tc.at, mode), func(t *testing.T) {
				c, p := pluginSampler(t)
				k := &killer{Sampler: c, plugin: p, op: tc.op, at: tc.at}
				res, _ := parityRun(t, g, metric.ExactMatch("answer"), killSampler(mode, k, t), WithTrialsInFlight(2))
				if k.killed != 1 || res.Rebuilds < 1 {
					t.Fatalf("killed %d times, %d rebuilds", k.killed, res.Rebuilds)
				}
				if diff := cmp.Diff(want, trialLines(res)); diff != "" {
					t.Errorf("after the kill the trials differ from an uninterrupted run's (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// trialLines writes each trial's number, kind, parameters and score.
func trialLines(res *Result) []string {
	out := make([]string, len(res.Trials))
	for i, tr := range res.Trials {
		out[i] = fmt.Sprintf("%d %s %v %v", tr.Number, tr.Kind, tr.Params, tr.Score)
	}
	return out
}
