package codeact_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/plugins/codeact/codeacttest"
)

// golden is testdata/golden/dspy_codeact.json, written by DSPy 3.4.1's
// CodeAct and ProgramOfThought (gen_golden.py).
type golden struct {
	CodeAct          goldenRun `json:"code_act"`
	ProgramOfThought goldenRun `json:"program_of_thought"`
}

type goldenRun struct {
	Inputs     map[string]any     `json:"inputs"`
	Requests   [][]lmtest.Message `json:"requests"`
	Predictors []string           `json:"predictors"`
	Trajectory map[string]any     `json:"trajectory"`
	Answer     any                `json:"answer"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/golden/dspy_codeact.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// inOrder scripts the simulated LM to give these answers, one per request,
// in order.
func inOrder(answers ...map[string]any) []lmtest.Rule {
	rules := make([]lmtest.Rule, len(answers))
	for i, a := range answers {
		rules[i] = lmtest.Rule{Fields: a, Times: 1}
	}
	return rules
}

func sentMessages(sim *lmtest.Server) [][]lmtest.Message {
	var out [][]lmtest.Message
	for _, r := range sim.Requests() {
		msgs := make([]lmtest.Message, len(r.Messages))
		for i, m := range r.Messages {
			msgs[i] = lmtest.Message{Role: m.Role, Content: m.Content}
		}
		out = append(out, msgs)
	}
	return out
}

// CodeAct sends DSPy's prompts, byte for byte: instructions with the tools,
// the trajectory as JSON, the extractor's formatted trajectory.
func TestCodeActPromptsAreDSPys(t *testing.T) {
	g := loadGolden(t).CodeAct
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx, sim := simulated(t, pool, inOrder(
		map[string]any{"generated_code": "```python\np = price('apple')\nq = quantity(item='apple')\nprint(p * q)\n```", "finished": false},
		map[string]any{"generated_code": "```python\nprint(missing)\n```", "finished": false},
		map[string]any{"generated_code": "```python\nprint(p * q + 1)\n```", "finished": true},
		map[string]any{"reasoning": "The code printed 22.", "answer": 22},
	)...)
	sig := signature.MustParse("question -> answer: int").WithInstructions("Answer with a number.")
	ca, err := codeact.NewCodeAct(sig, shopToolsOf[plainItem](t))
	if err != nil {
		t.Fatal(err)
	}
	pred, err := ca.Forward(ctx, g.Inputs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(g.Requests, sentMessages(sim)); diff != "" {
		t.Errorf("requests (-dspy +dspex):\n%s", diff)
	}
	traj, _ := pred.Get("trajectory")
	if diff := cmp.Diff(g.Trajectory, traj); diff != "" {
		t.Errorf("trajectory (-dspy +dspex):\n%s", diff)
	}
	var names []string
	for _, np := range ca.NamedPredictors() {
		names = append(names, np.Name)
	}
	if diff := cmp.Diff(g.Predictors, names); diff != "" {
		t.Errorf("predictors (-dspy +dspex):\n%s", diff)
	}
}

func TestProgramOfThoughtPromptsAreDSPys(t *testing.T) {
	g := loadGolden(t).ProgramOfThought
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx, sim := simulated(t, pool, inOrder(
		map[string]any{"reasoning": "Multiply.", "generated_code": "```python\nSUBMIT({'answer': missing})\n```"},
		map[string]any{"reasoning": "Define it.", "generated_code": "```python\nresult = 17 * 23\nSUBMIT({'answer': result})\n```"},
		map[string]any{"reasoning": "The code computed 391.", "answer": 391},
	)...)
	pot, err := codeact.NewProgramOfThought(signature.MustParse("question -> answer: int"))
	if err != nil {
		t.Fatal(err)
	}
	pred, err := pot.Forward(ctx, module.Inputs(g.Inputs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(g.Requests, sentMessages(sim)); diff != "" {
		t.Errorf("requests (-dspy +dspex):\n%s", diff)
	}
	if got, _ := pred.Get("answer"); got != int64(391) {
		t.Errorf("answer %#v", got)
	}
}
