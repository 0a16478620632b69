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
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
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
// rollout id. Safe for concurrent use.
type ruleLM struct{ gold map[string]string }

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
		if v%5 < 3 {
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
	Name      string `json:"name"`
	Optimizer string `json:"optimizer"`
	Program   string `json:"program"`
	// LM is "calls" for callsLM, empty for ruleLM.
	LM     string         `json:"lm"`
	Config map[string]any `json:"config"`
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
// Predict("question -> answer"), "pipe" a hint step then an answer step,
// "twice", "loop" and "chain" one predictor called several times.
func parityProgram(t *testing.T, kind string) module.Program {
	t.Helper()
	switch kind {
	case "predict":
		return module.NewPredict(signature.MustParse("question -> answer"))
	case "twice", "loop", "chain":
		return newSeveralCalls(kind)
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
	callsCtx := module.WithLM(context.Background(), &callsLM{gold: gold})
	trainset, valset := train[:20], dev[:10]
	m := metric.ExactMatch("answer")

	for _, tc := range golden.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			ctx := ctx
			if tc.LM == "calls" {
				ctx = callsCtx
			}
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

// The several_calls cases' programs call one predictor several times per
// run, as the golden script's Twice, Loop and Chain do.
const twiceSuffix = " Answer briefly."

type severalCalls struct {
	kind string
	p    *module.Predict
}

func newSeveralCalls(kind string) *severalCalls {
	sig := "question -> answer"
	if kind == "loop" {
		sig = "question, hint -> answer"
	}
	return &severalCalls{kind: kind, p: module.NewPredict(signature.MustParse(sig))}
}

func (m *severalCalls) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	q, _ := in["question"].(string)
	switch m.kind {
	case "loop":
		var pred *example.Prediction
		for i := range 3 {
			var err error
			if pred, err = m.p.Forward(ctx, module.Inputs{"question": q, "hint": fmt.Sprintf("try %d", i)}); err != nil {
				return nil, err
			}
		}
		return pred, nil
	default:
		first, err := m.p.Forward(ctx, module.Inputs{"question": q})
		if err != nil {
			return nil, err
		}
		next := q + twiceSuffix
		if m.kind == "chain" {
			next = first.String("answer")
		}
		if _, err := m.p.Forward(ctx, module.Inputs{"question": next}); err != nil {
			return nil, err
		}
		return first, nil
	}
}

func (m *severalCalls) NamedPredictors() []module.NamedPredictor {
	return []module.NamedPredictor{{Name: "p", Predictor: m.p}}
}

func (m *severalCalls) Clone() module.Program { return &severalCalls{kind: m.kind, p: m.p.Copy()} }

var ruleHint = regexp.MustCompile(`(?s)\[\[ ## hint ## \]\]\n(.*?)(?:\n\n|$)`)

// callsLM is the golden script's second rule LM (calls_rule). Safe for
// concurrent use.
type callsLM struct{ gold map[string]string }

func (*callsLM) Model() string { return "calls" }

func (r *callsLM) Complete(_ context.Context, req *lm.Request) (*lm.Response, error) {
	last := req.Messages[len(req.Messages)-1].Content
	q, err := ruleQuestionOf(last)
	if err != nil {
		return nil, err
	}
	var value string
	if g, ok := r.gold[q]; ok {
		value = g
		if m := ruleHint.FindStringSubmatch(last); m != nil && m[1] != "try 2" {
			value = q[:1]
		}
	} else {
		value = "no answer to " + q
	}
	text := fmt.Sprintf("[[ ## answer ## ]]\n%s\n\n[[ ## completed ## ]]", value)
	return &lm.Response{Model: "calls", Choices: []lm.Choice{{Text: text, FinishReason: "stop"}}}, nil
}
