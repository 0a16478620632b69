package teleprompt_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/pyrand"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
)

// The golden optimizers.json is written by DSPy 3.4.1 itself
// (testdata/golden/optimizers/gen_dspy_optimizers.py, run by hand); its
// doc string states the rule LM that ruleLM reproduces.
const optimizersGolden = "../../testdata/golden/optimizers/optimizers.json"

var (
	ruleQuestion = regexp.MustCompile(`(?s)\[\[ ## question ## \]\]\n(.*?)(?:\n\n|$)`)
	ruleOutput   = regexp.MustCompile("starting with the field `\\[\\[ ## (\\w+) ## \\]\\]`")
)

// ruleLM answers as the golden script's rule LM: a deterministic function
// of the messages (the question asked and the demos' questions) and the
// rollout id; with always set, it answers every question right. Safe for
// concurrent use.
type ruleLM struct {
	gold   map[string]string
	always bool
}

func ruleHash(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	v, _ := strconv.ParseUint(hex.EncodeToString(sum[:4]), 16, 64)
	return v
}

func ruleQuestionOf(content string) (string, error) {
	m := ruleQuestion.FindStringSubmatch(content)
	if m == nil {
		return "", fmt.Errorf("no question in %q", content)
	}
	return m[1], nil
}

func (*ruleLM) Model() string { return "rule" }

func (r *ruleLM) Complete(_ context.Context, req *lm.Request) (*lm.Response, error) {
	last := req.Messages[len(req.Messages)-1].Content
	field := ruleOutput.FindStringSubmatch(last)
	if field == nil {
		return nil, fmt.Errorf("no output field in %q", last)
	}
	q, err := ruleQuestionOf(last)
	if err != nil {
		return nil, err
	}
	var value string
	if field[1] == "hint" {
		value = fmt.Sprintf("hint-%d", ruleHash(q)%7)
	} else {
		v := ruleHash(q)
		if req.RolloutID != "" {
			n, err := strconv.ParseUint(req.RolloutID, 10, 64)
			if err != nil {
				return nil, err
			}
			v += n
		}
		for _, m := range req.Messages[1 : len(req.Messages)-1] {
			if m.Role != lm.RoleUser {
				continue
			}
			d, err := ruleQuestionOf(m.Content)
			if err != nil {
				return nil, err
			}
			v += ruleHash(d)
		}
		value = "I don't know"
		if v%5 < 3 || r.always {
			value = r.gold[q]
		}
	}
	text := fmt.Sprintf("[[ ## %s ## ]]\n%s\n\n[[ ## completed ## ]]", field[1], value)
	return &lm.Response{Model: "rule", Choices: []lm.Choice{{Text: text, FinishReason: "stop"}}}, nil
}

var _ lm.LM = (*ruleLM)(nil)

type goldenOptimizers struct {
	Cases []goldenOptimizerCase `json:"cases"`
}

type goldenOptimizerCase struct {
	Name      string         `json:"name"`
	Optimizer string         `json:"optimizer"`
	Program   string         `json:"program"`
	Config    map[string]any `json:"config"`
	// Demos are each predictor's demos, in order, each as DSPy's toDict().
	Demos      []json.RawMessage `json:"demos"`
	BestSeed   int               `json:"best_seed"`
	Candidates []struct {
		Seed  int               `json:"seed"`
		Score float64           `json:"score"`
		Demos []json.RawMessage `json:"demos"`
	} `json:"candidates"`
}

// parityProgram builds the golden script's programs: "predict" is
// Predict("question -> answer"), "pipe" a hint step then an answer step.
func parityProgram(t *testing.T, kind string) module.Program {
	t.Helper()
	if kind == "predict" {
		return module.NewPredict(signature.MustParse("question -> answer"))
	}
	pipe, err := module.NewPipeline(
		module.Step{Name: "hint", Program: module.NewPredict(signature.MustParse("question -> hint"))},
		module.Step{Name: "answer", Program: module.NewPredict(signature.MustParse("question, hint -> answer"))},
	)
	if err != nil {
		t.Fatal(err)
	}
	return pipe
}

// demosJSON renders each predictor's demos as DSPy's toDict() list in
// Python-style JSON, keys in order.
func demosJSON(p module.Program) []string {
	var out []string
	for _, np := range p.NamedPredictors() {
		objs := []any{}
		for _, d := range np.Predictor.Demos() {
			objs = append(objs, d.Object())
		}
		out = append(out, pyjson.Dumps(objs, -1))
	}
	return out
}

// canonical re-renders golden JSON the way demosJSON renders demos.
func canonical(t *testing.T, raws []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, raw := range raws {
		v, err := pyjson.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pyjson.Dumps(v, -1))
	}
	return out
}

func cfgInt(c map[string]any, key string, def int) int {
	if v, ok := c[key].(float64); ok {
		return int(v)
	}
	return def
}

// labeledDemos maps DSPy's max_labeled_demos to MaxLabeledDemos (where 0
// means the default, and none is negative).
func labeledDemos(c map[string]any) int {
	n := cfgInt(c, "max_labeled_demos", 16)
	if n == 0 {
		return -1
	}
	return n
}

// TestDSPyOptimizerParity runs LabeledFewShot, BootstrapFewShot and
// RandomSearch as DSPy 3.4.1 ran them for the golden (same training slice,
// seeds and LM answers) and checks that every predictor gets the same
// demos, in the same order, and that random search scores the same
// candidates the same and returns the same one.
func TestDSPyOptimizerParity(t *testing.T) {
	raw, err := os.ReadFile(optimizersGolden)
	if err != nil {
		t.Fatal(err)
	}
	var golden goldenOptimizers
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := example.LoadJSONL(filepath.Join(taskDir, "dev.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	gold := map[string]string{}
	for _, ex := range slices.Concat(train, dev) {
		gold[ex.String("question")] = ex.String("answer")
	}
	ctx := module.WithLM(context.Background(), &ruleLM{gold: gold})
	trainset, valset := train[:20], dev[:10]
	m := metric.ExactMatch("answer")

	for _, tc := range golden.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			student := parityProgram(t, tc.Program)
			var compiled module.Program
			var err error
			switch tc.Optimizer {
			case "labeled":
				sample, _ := tc.Config["sample"].(bool)
				compiled, err = (&teleprompt.LabeledFewShot{K: cfgInt(tc.Config, "k", 16), NoSample: !sample}).Compile(ctx, student, trainset)
			case "bootstrap":
				compiled, err = (&teleprompt.BootstrapFewShot{
					Metric: m, MaxBootstrappedDemos: cfgInt(tc.Config, "max_bootstrapped_demos", 4),
					MaxLabeledDemos: labeledDemos(tc.Config), MaxRounds: cfgInt(tc.Config, "max_rounds", 1),
				}).Compile(ctx, student, trainset)
			case "random_search":
				res, err := (&teleprompt.RandomSearch{
					Metric: m, MaxBootstrappedDemos: cfgInt(tc.Config, "max_bootstrapped_demos", 4),
					MaxLabeledDemos: labeledDemos(tc.Config), NumCandidates: cfgInt(tc.Config, "num_candidate_programs", 16),
					Valset: valset, Eval: evaluate.Options{Concurrency: 4},
				}).Search(ctx, student, trainset)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Candidates) != len(tc.Candidates) {
					t.Fatalf("%d candidates, DSPy %d", len(res.Candidates), len(tc.Candidates))
				}
				for i, want := range tc.Candidates {
					c := res.Candidates[i]
					if res.Seeds[i] != want.Seed || c.Score != want.Score {
						t.Errorf("candidate %d: seed %d score %v, DSPy seed %d score %v", i, res.Seeds[i], c.Score, want.Seed, want.Score)
					}
					if diff := cmp.Diff(canonical(t, want.Demos), demosJSON(c.Program)); diff != "" {
						t.Errorf("seed %d demos differ from DSPy's (-dspy +dspex):\n%s", want.Seed, diff)
					}
				}
				if best := res.Seeds[slices.Index(res.Candidates, res.Best)]; best != tc.BestSeed {
					t.Errorf("best seed %d, DSPy %d", best, tc.BestSeed)
				}
				return
			default:
				t.Fatalf("unknown optimizer %q", tc.Optimizer)
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(canonical(t, tc.Demos), demosJSON(compiled)); diff != "" {
				t.Errorf("demos differ from DSPy's (-dspy +dspex):\n%s", diff)
			}
		})
	}
}

// askTwice calls one predictor twice per run (the question, then the
// question with a suffix), as a loop or ReAct does.
type askTwice struct{ p *module.Predict }

const twiceSuffix = " Answer briefly."

func (m *askTwice) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	q, _ := in["question"].(string)
	if _, err := m.p.Forward(ctx, module.Inputs{"question": q}); err != nil {
		return nil, err
	}
	return m.p.Forward(ctx, module.Inputs{"question": q + twiceSuffix})
}

func (m *askTwice) NamedPredictors() []module.NamedPredictor {
	return []module.NamedPredictor{{Name: "p", Predictor: m.p}}
}

func (m *askTwice) Clone() module.Program { return &askTwice{p: m.p.Copy()} }

// When a predictor runs several times in a successful run, one call is
// kept, drawn as DSPy draws it (random() < 0.5 picks among the earlier
// calls with choice, else the last) from a generator seeded, in DSPEx, by
// the SHA-256 hex digest of the calls' demos as Python-style JSON
// (docs/optimizers.md: DSPy's pickle-hash seed cannot be reproduced). The
// pick depends on the run's demos, not on the example's position.
func TestBootstrapSeveralCallsPick(t *testing.T) {
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	gold := map[string]string{}
	for _, ex := range train {
		gold[ex.String("question")] = ex.String("answer")
		gold[ex.String("question")+twiceSuffix] = ex.String("answer")
	}
	ctx := module.WithLM(context.Background(), &ruleLM{gold: gold, always: true})
	compile := func(trainset []example.Example) []example.Example {
		t.Helper()
		student := &askTwice{p: module.NewPredict(signature.MustParse("question -> answer"))}
		out, err := (&teleprompt.BootstrapFewShot{Metric: metric.ExactMatch("answer"), MaxBootstrappedDemos: 20, MaxLabeledDemos: 20}).Compile(ctx, student, trainset)
		if err != nil {
			t.Fatal(err)
		}
		return out.NamedPredictors()[0].Predictor.Demos()
	}
	demos := compile(train[:20])
	kinds := map[bool]int{}
	for _, d := range demos {
		if aug, _ := d.Bool("augmented"); !aug {
			t.Fatalf("demo %v not bootstrapped", d.Map())
		}
		q := d.String("question")
		base, second := strings.CutSuffix(q, twiceSuffix)
		kinds[second]++
		// The two calls' demos, as the run recorded them.
		calls := []example.Example{}
		for _, cq := range []string{base, base + twiceSuffix} {
			calls = append(calls, example.FromObject(example.Object{
				{Key: "augmented", Value: true}, {Key: "question", Value: cq}, {Key: "answer", Value: gold[cq]}}))
		}
		objs := []any{calls[0].Object(), calls[1].Object()}
		sum := sha256.Sum256([]byte(pyjson.Dumps(objs, -1)))
		rng := pyrand.NewBytes([]byte(hex.EncodeToString(sum[:])))
		want := calls[1]
		if rng.Random() < 0.5 {
			i, _ := rng.Choice(1)
			want = calls[i]
		}
		if diff := cmp.Diff(pyjson.Dumps(want.Object(), -1), pyjson.Dumps(d.Object(), -1)); diff != "" {
			t.Errorf("kept call (-want +got):\n%s", diff)
		}
	}
	if kinds[true] == 0 || kinds[false] == 0 {
		t.Errorf("kept %d first and %d last calls; want both kinds among %d demos", kinds[false], kinds[true], len(demos))
	}
	// The same examples in reverse order keep the same call of each.
	kept := map[string]string{}
	for _, d := range demos {
		kept[strings.TrimSuffix(d.String("question"), twiceSuffix)] = d.String("question")
	}
	rev := slices.Clone(train[:20])
	slices.Reverse(rev)
	again := compile(rev)
	if len(again) != len(demos) || len(kept) != 20 {
		t.Fatalf("%d and %d demos for %d examples, want 20", len(demos), len(again), len(kept))
	}
	for _, d := range again {
		q := d.String("question")
		if base := strings.TrimSuffix(q, twiceSuffix); kept[base] != q {
			t.Errorf("example %q kept %q in training order, %q in reverse", base, kept[base], q)
		}
	}
}
