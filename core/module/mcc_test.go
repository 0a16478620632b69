package module_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// mccAttempts are three reasoning attempts at "What is 2+2?", in the shapes
// DSPy's ChainOfThought (reasoning) and MultiChainComparison (rationale)
// produce.
func mccAttempts() []map[string]any {
	return []map[string]any{
		{"reasoning": "  add two and two.\nThen check.", "answer": "4\n"},
		{"rationale": "count on my fingers", "reasoning": "ignored", "answer": "four"},
		{"reasoning": "guess", "answer": 5},
	}
}

func TestMultiChainComparisonPromptMatchesDSPy(t *testing.T) {
	cases := []struct {
		name        string
		completions any
	}{
		{"field maps", mccAttempts()},
		{"a prediction's completions", example.NewPrediction(mccAttempts()...)},
		{"predictions", func() []*example.Prediction {
			var out []*example.Prediction
			for _, c := range mccAttempts() {
				out = append(out, example.NewPrediction(c))
			}
			return out
		}()},
		{"a list of maps", []any{mccAttempts()[0], mccAttempts()[1], mccAttempts()[2]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := startRolloutSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
				{Fields: map[string]any{"rationale": "Two and two make four.", "answer": "4"}},
			}}}, nil)
			ctx := module.WithLM(context.Background(), sim.model)
			mcc, err := module.NewMultiChainComparison(signature.MustParse("question -> answer"), 0)
			if err != nil {
				t.Fatal(err)
			}
			pred, err := mcc.Forward(ctx, module.Inputs{"question": "What is 2+2?", "completions": c.completions})
			if err != nil {
				t.Fatal(err)
			}
			if pred.String("rationale") != "Two and two make four." || pred.String("answer") != "4" {
				t.Errorf("pred = %v", pred.Map())
			}
			reqs := sim.srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			if diff := cmp.Diff(dspyMCCSystem, reqs[0].Messages[0].Content); diff != "" {
				t.Errorf("system message differs from DSPy's (-dspy +dspex):\n%s", diff)
			}
			if diff := cmp.Diff(dspyMCCUser, lastMessage(reqs[0])); diff != "" {
				t.Errorf("user message differs from DSPy's (-dspy +dspex):\n%s", diff)
			}
			if r := sim.rec.requests()[0]; r.Temperature == nil || *r.Temperature != 0.7 {
				t.Errorf("temperature = %v, want DSPy's 0.7", r.Temperature)
			}
		})
	}
}

func TestMultiChainComparisonSignature(t *testing.T) {
	mcc, err := module.NewMultiChainComparison(signature.MustParse("question -> answer"), 2, module.WithConfig(lm.Params{Temperature: lm.Float(0.2), MaxTokens: new(int)}))
	if err != nil {
		t.Fatal(err)
	}
	sig := mcc.Predict.Signature()
	if got, want := sig.String(), "question, reasoning_attempt_1, reasoning_attempt_2 -> rationale, answer"; got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
	if sig.Instructions() != "Given the fields `question`, produce the fields `answer`." {
		t.Errorf("instructions = %q", sig.Instructions())
	}
	f, _ := sig.Field("reasoning_attempt_2")
	r, _ := sig.Field("rationale")
	if f.Prefix != "Student Attempt #2:" || f.Desc != "${reasoning attempt}" ||
		r.Prefix != "Accurate Reasoning: Thank you everyone. Let's now holistically" || r.Desc != "${corrected reasoning}" {
		t.Errorf("fields: %+v, %+v", f, r)
	}
	if p := mcc.Predict.Params(); *p.Temperature != 0.2 || p.MaxTokens == nil {
		t.Errorf("params = %+v: the options' temperature and the rest should be kept", p)
	}
	if names := mcc.NamedPredictors(); len(names) != 1 || names[0].Name != "predict" {
		t.Errorf("named predictors = %v", names)
	}
	c := module.CloneAs(mcc)
	c.Predict.SetDemos([]example.Example{example.New(map[string]any{"question": "x"})})
	if len(mcc.Predict.Demos()) != 0 || c.M != 2 {
		t.Error("the clone shares its predictor with the original")
	}
	if _, err := module.NewMultiChainComparison(signature.MustParse("rationale -> answer"), 3); err == nil {
		t.Error("a signature with a rationale input: no error")
	}
	if _, err := module.NewMultiChainComparison(signature.MustParse("question, reasoning_attempt_1 -> answer"), 3); err == nil {
		t.Error("a signature with a reasoning_attempt_1 input: no error")
	}
}

func TestMultiChainComparisonBadCompletions(t *testing.T) {
	mcc, err := module.NewMultiChainComparison(signature.MustParse("question -> answer"), 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx := module.WithLM(context.Background(), startRolloutSim(t, lmtest.Config{}, nil).model)
	cases := []struct {
		name        string
		completions any
		want        string
	}{
		{"too few", mccAttempts()[:2], "the number of attempts (2) doesn't match the expected number M (3)"},
		{"missing", nil, `no "completions" input`},
		{"no reasoning", []map[string]any{{"answer": "1"}, {"answer": "2"}, {"answer": "3"}}, `neither "rationale" nor "reasoning"`},
		{"no answer", []map[string]any{{"reasoning": "r"}, {"reasoning": "r"}, {"reasoning": "r"}}, `no field "answer"`},
		{"wrong type", "three attempts", "not a list of completions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := module.Inputs{"question": "q"}
			if c.completions != nil {
				in["completions"] = c.completions
			}
			_, err := mcc.Forward(ctx, in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
}

// MultiChainComparison over a ChainOfThought's sampled completions, as
// DSPy's docs use it.
func ExampleMultiChainComparison() {
	srv, _ := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "reasoning_attempt_1", Fields: map[string]any{"rationale": "Most attempts say 4.", "answer": "4"}},
	}}})
	defer srv.Close()
	model, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "UNSET_KEY"})
	ctx := module.WithLM(context.Background(), model)

	attempts := []map[string]any{
		{"reasoning": "2 plus 2 is 4.", "answer": "4"},
		{"reasoning": "Two pairs make four.", "answer": "4"},
		{"reasoning": "I think it is 5.", "answer": "5"},
	}
	mcc, _ := module.NewMultiChainComparison(signature.MustParse("question -> answer"), 3)
	pred, err := mcc.Forward(ctx, module.Inputs{"question": "What is 2+2?", "completions": attempts})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pred.String("answer"))
	// Output: 4
}

// Prompts written by DSPy 3.4.1 for the same signature and inputs.

const dspyMCCSystem = "Your input fields are:\n" +
	"1. `question` (str): \n" +
	"2. `reasoning_attempt_1` (str): ${reasoning attempt}\n" +
	"3. `reasoning_attempt_2` (str): ${reasoning attempt}\n" +
	"4. `reasoning_attempt_3` (str): ${reasoning attempt}\n" +
	"Your output fields are:\n" +
	"1. `rationale` (str): ${corrected reasoning}\n" +
	"2. `answer` (str):\n" +
	"All interactions will be structured in the following way, with the appropriate values filled in.\n" +
	"\n" +
	"[[ ## question ## ]]\n" +
	"{question}\n" +
	"\n" +
	"[[ ## reasoning_attempt_1 ## ]]\n" +
	"{reasoning_attempt_1}\n" +
	"\n" +
	"[[ ## reasoning_attempt_2 ## ]]\n" +
	"{reasoning_attempt_2}\n" +
	"\n" +
	"[[ ## reasoning_attempt_3 ## ]]\n" +
	"{reasoning_attempt_3}\n" +
	"\n" +
	"[[ ## rationale ## ]]\n" +
	"{rationale}\n" +
	"\n" +
	"[[ ## answer ## ]]\n" +
	"{answer}\n" +
	"\n" +
	"[[ ## completed ## ]]\n" +
	"In adhering to this structure, your objective is: \n" +
	"        Given the fields `question`, produce the fields `answer`."

const dspyMCCUser = "[[ ## question ## ]]\n" +
	"What is 2+2?\n" +
	"\n" +
	"[[ ## reasoning_attempt_1 ## ]]\n" +
	"«I'm trying to add two and two. I'm not sure but my prediction is 4»\n" +
	"\n" +
	"[[ ## reasoning_attempt_2 ## ]]\n" +
	"«I'm trying to count on my fingers I'm not sure but my prediction is four»\n" +
	"\n" +
	"[[ ## reasoning_attempt_3 ## ]]\n" +
	"«I'm trying to guess I'm not sure but my prediction is 5»\n" +
	"\n" +
	"Respond with the corresponding output fields, starting with the field `[[ ## rationale ## ]]`, then `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
