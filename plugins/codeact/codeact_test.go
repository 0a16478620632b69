package codeact_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/plugins/codeact/codeacttest"
)

// simulated starts the simulated LM with rules and returns a context with
// it as the LM, and pool as the interpreter pool.
func simulated(t *testing.T, pool *codeact.Pool, rules ...lmtest.Rule) (context.Context, *lmtest.Server) {
	t.Helper()
	sim := lmtest.NewServer(t, lmtest.WithScript(&lmtest.Script{Rules: rules}))
	model, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: sim.URL(), APIKey: "unused"})
	if err != nil {
		t.Fatal(err)
	}
	return codeact.WithPool(module.WithLM(t.Context(), model), pool), sim
}

// The first step's trajectory is an empty dict; later ones hold the
// earlier steps as JSON.
const firstStep = "[[ ## trajectory ## ]]\n{}"

func TestCodeActTwoToolCallsAndArithmeticInPython(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx, sim := simulated(t, pool,
		lmtest.Rule{Match: firstStep, Fields: map[string]any{
			"generated_code": "```python\np = price('apple')\nq = quantity(item='apple')\ntotal = p * q + 17 ** 2\nprint(total)\n```",
			"finished":       false,
		}},
		lmtest.Rule{Match: `"code_output_0": "\"310\\n\""`, Fields: map[string]any{
			"generated_code": "```python\nSUBMIT(answer=total)\n```",
			"finished":       true,
		}},
	)
	ca, err := codeact.NewCodeAct(signature.MustParse("question -> answer: int"), shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	pred, err := ca.Forward(ctx, module.Inputs{"question": "What do all the apples in stock cost, plus 17 squared?"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := pred.Get("answer"); got != int64(310) {
		t.Errorf("answer = %#v, want 310", got)
	}
	traj, _ := pred.Get("trajectory")
	m := traj.(map[string]any)
	if m["code_output_0"] != `"310\n"` || m["code_output_1"] != `{"answer": 310}` {
		t.Errorf("trajectory %#v", m)
	}
	// Two codeact calls, no extractor: SUBMIT gave every output.
	if n := len(sim.Requests()); n != 2 {
		t.Errorf("%d LM calls, want 2", n)
	}
	sys := sim.Requests()[0].Messages[0].Content
	for _, want := range []string{
		"You are an intelligent agent. For each episode, you will receive the fields `question` as input.",
		"(1) price, whose description is <desc>Returns the price of one item in euros.</desc>. It takes arguments {'item': {'type': 'string', 'description': \"the item's name\"}}.",
		"(2) quantity, whose description is",
	} {
		if !strings.Contains(sys, want) {
			t.Errorf("system prompt lacks %q:\n%s", want, sys)
		}
	}
}

func TestCodeActExtractsAfterFinished(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx, sim := simulated(t, pool,
		lmtest.Rule{Match: firstStep, Fields: map[string]any{
			"generated_code": "```python\nprint(price('pear') * 4)\n```",
			"finished":       true,
		}},
		lmtest.Rule{Match: "[[ ## code_output_0 ## ]]\n\"20\\n\"", Fields: map[string]any{"reasoning": "4 pears at 5", "answer": "20"}},
	)
	ca, err := codeact.NewCodeAct(signature.MustParse("question -> answer"), shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	pred, err := ca.Forward(ctx, module.Inputs{"question": "What do 4 pears cost?"})
	if err != nil {
		t.Fatal(err)
	}
	if pred.String("answer") != "20" || pred.String("reasoning") != "4 pears at 5" {
		t.Errorf("prediction %v", pred.Map())
	}
	if n := len(sim.Requests()); n != 2 {
		t.Errorf("%d LM calls, want 2 (codeact, extractor)", n)
	}
}

func TestCodeActTellsTheLMTheStateWasLost(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{Timeout: 300 * time.Millisecond})
	ctx, sim := simulated(t, pool,
		lmtest.Rule{Match: firstStep, Fields: map[string]any{
			"generated_code": "```python\nx = 42\nwhile True:\n    pass\n```",
			"finished":       false,
		}},
		lmtest.Rule{Match: "The Python interpreter was restarted", Times: 1, Fields: map[string]any{
			"generated_code": "```python\nprint(x)\n```",
			"finished":       false,
		}},
		lmtest.Rule{Match: "name 'x' is not defined", Fields: map[string]any{
			"generated_code": "```python\nx = 42\nSUBMIT(answer=x)\n```",
			"finished":       true,
		}},
	)
	ca, err := codeact.NewCodeAct(signature.MustParse("question -> answer: int"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pred, err := ca.Forward(ctx, module.Inputs{"question": "loop"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := pred.Get("answer"); got != int64(42) {
		t.Errorf("answer = %#v", got)
	}
	traj, _ := pred.Get("trajectory")
	obs, _ := traj.(map[string]any)["observation_0"].(string)
	if !strings.HasPrefix(obs, "Failed to execute the generated code: ExecutionTimeout: ") || !strings.Contains(obs, codeact.StateLostNote) {
		t.Errorf("observation_0 = %q", obs)
	}
	if n := len(sim.Requests()); n != 3 {
		t.Errorf("%d LM calls, want 3", n)
	}
}

func TestCodeActWrongToolArgumentsAreObservations(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx, _ := simulated(t, pool,
		// Later steps first: the first matching rule wins, and the trajectory
		// keeps every earlier observation.
		lmtest.Rule{Match: "expected str", Fields: map[string]any{
			"generated_code": "```python\nSUBMIT(answer=price('apple'))\n```",
			"finished":       false,
		}},
		lmtest.Rule{Match: "unexpected keyword argument", Fields: map[string]any{
			"generated_code": "```python\nSUBMIT(answer=price(3))\n```",
			"finished":       false,
		}},
		lmtest.Rule{Match: firstStep, Fields: map[string]any{
			"generated_code": "```python\nprice(fruit='apple')\n```",
			"finished":       false,
		}},
	)
	ca, err := codeact.NewCodeAct(signature.MustParse("question -> answer: int"), shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	pred, err := ca.Forward(ctx, module.Inputs{"question": "price of an apple"})
	if err != nil {
		t.Fatal(err)
	}
	traj, _ := pred.Get("trajectory")
	m := traj.(map[string]any)
	for key, want := range map[string]string{
		"observation_0": "Failed to execute the generated code: TypeError: price() got an unexpected keyword argument 'fruit' (its arguments: item)",
		"observation_1": `Failed to execute the generated code: ToolError: tool price: argument "item": expected str, got number 3`,
	} {
		if m[key] != want {
			t.Errorf("%s = %q, want %q", key, m[key], want)
		}
	}
	if got, _ := pred.Get("answer"); got != int64(3) {
		t.Errorf("answer = %#v", got)
	}
}

func TestModulesWithoutPool(t *testing.T) {
	ca, err := codeact.NewCodeAct(signature.MustParse("q -> a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Forward(t.Context(), module.Inputs{"q": "x"}); !errors.Is(err, codeact.ErrNoPool) {
		t.Errorf("CodeAct without a pool: %v", err)
	}
	pot, err := codeact.NewProgramOfThought(signature.MustParse("q -> a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pot.Forward(t.Context(), module.Inputs{"q": "x"}); !errors.Is(err, codeact.ErrNoPool) {
		t.Errorf("ProgramOfThought without a pool: %v", err)
	}
}

func TestProgramOfThoughtArithmetic(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx, sim := simulated(t, pool,
		lmtest.Rule{Match: "[[ ## previous_code ## ]]", Fields: map[string]any{
			"reasoning":      "multiply, then submit",
			"generated_code": "```python\nresult = 17 * 23 + 2 ** 10\nSUBMIT({'answer': result})\n```",
		}},
		lmtest.Rule{Match: "[[ ## code_output ## ]]\n{\"output\": {\"answer\": 1415}}", Fields: map[string]any{
			"reasoning": "the code computed it", "answer": "1415",
		}},
		lmtest.Rule{Match: "What is 17 * 23 + 2 ** 10?", Fields: map[string]any{
			"reasoning":      "compute it",
			"generated_code": "```python\nSUBMIT({'answer': undefined_name})\n```",
		}},
	)
	pot, err := codeact.NewProgramOfThought(signature.MustParse("question -> answer: int"))
	if err != nil {
		t.Fatal(err)
	}
	pred, err := pot.Forward(ctx, module.Inputs{"question": "What is 17 * 23 + 2 ** 10?"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := pred.Get("answer"); got != int64(1415) {
		t.Errorf("answer = %#v", got)
	}
	reqs := sim.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d LM calls, want 3 (generate, regenerate, answer)", len(reqs))
	}
	regen := reqs[1].Messages[len(reqs[1].Messages)-1].Content
	if !strings.Contains(regen, "[[ ## error ## ]]\nNameError: name 'undefined_name' is not defined") {
		t.Errorf("regenerate prompt:\n%s", regen)
	}
	var names []string
	for _, np := range pot.NamedPredictors() {
		names = append(names, np.Name)
	}
	if got := strings.Join(names, ","); got != "code_generate.predict,code_regenerate.predict,generate_output.predict" {
		t.Errorf("predictors %s", got)
	}
}

func TestProgramOfThoughtMaxHops(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx, sim := simulated(t, pool, lmtest.Rule{Fields: map[string]any{"generated_code": "```python\n1/0\n```"}})
	pot, err := codeact.NewProgramOfThought(signature.MustParse("question -> answer"), codeact.MaxIters(2))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pot.Forward(ctx, module.Inputs{"question": "divide"})
	if !errors.Is(err, codeact.ErrMaxHops) || !strings.Contains(err.Error(), "ZeroDivisionError: division by zero") {
		t.Errorf("err = %v", err)
	}
	if n := len(sim.Requests()); n != 2 {
		t.Errorf("%d LM calls, want 2", n)
	}
}
