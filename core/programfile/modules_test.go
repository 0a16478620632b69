package programfile

import (
	"context"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
)

func simLM(t *testing.T, rules ...lmtest.Rule) (context.Context, *lmtest.Server) {
	t.Helper()
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: rules}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	return module.WithLM(context.Background(), client), srv
}

func TestMultiStepProgram(t *testing.T) {
	spec, err := Parse("p.yaml", []byte(`lm: {model: m}
program:
  steps:
    - name: generate
      module: chain_of_thought
      signature: "question -> answer"
    - name: summarize
      module: predict
      signature: "text, question -> summary"
      inputs: {text: answer}
`))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := spec.NewProgram()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, np := range prog.NamedPredictors() {
		names = append(names, np.Name)
	}
	if strings.Join(names, ",") != "generate.predict,summarize" {
		t.Errorf("predictor names = %v", names)
	}
	// The first matching rule wins, so the more specific comes first.
	ctx, _ := simLM(t,
		lmtest.Rule{Match: "[[ ## text ## ]]\n42", Fields: map[string]any{"summary": "The answer is 42."}},
		lmtest.Rule{Match: "[[ ## question ## ]]\nWhat is 6 times 7?\n\nRespond", Fields: map[string]any{"reasoning": "six sevens", "answer": "42"}},
	)
	pred, err := prog.Forward(ctx, module.Inputs{"question": "What is 6 times 7?"})
	if err != nil {
		t.Fatal(err)
	}
	if pred.String("answer") != "42" || pred.String("summary") != "The answer is 42." || pred.String("reasoning") != "six sevens" {
		t.Errorf("prediction = %v", pred.Map())
	}
	outs, _ := spec.Outputs()
	var outNames []string
	for _, f := range outs {
		outNames = append(outNames, f.Name)
	}
	if strings.Join(outNames, ",") != "reasoning,answer,summary" {
		t.Errorf("outputs = %v", outNames)
	}
}

func TestReActAndBestOfNFromFile(t *testing.T) {
	spec, err := Parse("p.yaml", []byte(`lm: {model: m}
program:
  steps:
    - name: solve
      module: react
      signature: "question -> answer: int"
      tools: [calculator]
      max_iters: 4
    - name: check
      module: best_of_n
      n: 2
      threshold: 1
      reward: {judge: "question, verdict -> plausible: bool"}
      of: {module: predict, signature: "question, answer -> verdict"}
`))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := spec.NewProgram()
	if err != nil {
		t.Fatal(err)
	}
	// The first matching rule wins, so the more specific comes first.
	ctx, srv := simLM(t,
		lmtest.Rule{Match: "[[ ## verdict ## ]]\nright", Fields: map[string]any{"plausible": true}},
		lmtest.Rule{Match: "[[ ## answer ## ]]\n42", Fields: map[string]any{"verdict": "right"}},
		lmtest.Rule{Match: "Completed.\n\nRespond with the corresponding output fields, starting with the field `[[ ## reasoning", Fields: map[string]any{"reasoning": "the tool said 42", "answer": 42}},
		lmtest.Rule{Match: "[[ ## observation_0 ## ]]\n42", Fields: map[string]any{"next_thought": "done", "next_tool_name": "finish", "next_tool_args": map[string]any{}}},
		lmtest.Rule{Match: "[[ ## trajectory ## ]]\n", Fields: map[string]any{"next_thought": "compute", "next_tool_name": "calculator", "next_tool_args": map[string]any{"expression": "6*7"}}},
	)
	pred, err := prog.Forward(ctx, module.Inputs{"question": "What is 6 times 7?"})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := pred.Int("answer"); n != 42 || pred.String("verdict") != "right" {
		t.Errorf("prediction = %v (requests: %d)", pred.Map(), srv.Stats().Requests)
	}
}

func TestProgramFileErrors(t *testing.T) {
	cases := []struct{ name, program, want string }{
		{"both", "  module: predict\n  signature: a -> b\n  steps:\n    - {name: x, module: predict, signature: a -> b}\n", "give either module and signature, or steps"},
		{"no name", "  steps:\n    - {module: predict, signature: a -> b}\n", "program.steps.0.name: required"},
		{"missing input", "  steps:\n    - {name: x, module: predict, signature: a -> b}\n    - {name: y, module: predict, signature: c -> d}\n", `step "y" needs "c"`},
		{"bad mapping", "  steps:\n    - {name: x, module: predict, signature: a -> b}\n    - {name: y, module: predict, signature: c -> d, inputs: {z: b}}\n", `"z" is not an input of step "y"`},
		{"unknown tool", "  module: react\n  signature: a -> b\n  tools: [browser]\n", `"browser" is not a built-in tool`},
		{"no tools", "  module: react\n  signature: a -> b\n", "react needs tools"},
		{"best_of_n without of", "  module: best_of_n\n  reward: {judge: \"a -> ok: bool\"}\n", "program.of: required"},
		{"judge reads unknown", "  module: best_of_n\n  reward: {judge: \"zzz -> ok: bool\"}\n  of: {module: predict, signature: a -> b}\n", `the judge reads "zzz"`},
		{"judge output type", "  module: refine\n  reward: {judge: \"a -> ok\"}\n  of: {module: predict, signature: a -> b}\n", "must be bool, int or float"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte("lm: {model: m}\nprogram:\n"+c.program))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}
