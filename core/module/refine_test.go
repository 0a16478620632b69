package module_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// feedbackRule answers Refine's OfferFeedback requests with advice.
func feedbackRule(advice map[string]any) lmtest.Rule {
	return lmtest.Rule{Match: "[[ ## module_names ## ]]", Fields: map[string]any{"discussion": "It rambled.", "advice": advice}}
}

func lastMessage(r lmtest.RecordedRequest) string { return r.Messages[len(r.Messages)-1].Content }

var never = module.Reward(func(module.Inputs, *example.Prediction) float64 { return 0 })

func TestRefineHintsTheNextAttempt(t *testing.T) {
	sim := startRolloutSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		feedbackRule(map[string]any{"predict": "Answer with one word."}),
		{Fields: map[string]any{"reasoning": "Because.", "answer": 4}},
	}}}, nil)
	ctx := module.WithLM(context.Background(), sim.model)
	cot := module.NewChainOfThought(signature.MustParse("question, context: list[str] -> answer: int"))
	sigBefore := cot.Predict.Signature()
	refine := module.NewRefine(cot, 2, never, 1, module.WithProgramCode("class CoT: ..."), module.WithRewardCode("def never(args, pred): return 0"))

	pred, err := refine.Forward(ctx, module.Inputs{"question": "q", "context": []string{"c1"}})
	if err != nil {
		t.Fatal(err)
	}
	reqs := sim.srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("server saw %d requests, want 3 (attempt, feedback, attempt)", len(reqs))
	}
	first, feedback, second := reqs[0], reqs[1], reqs[2]

	if strings.Contains(first.Messages[0].Content, "hint_") || strings.Contains(lastMessage(first), "hint_") {
		t.Errorf("the first attempt has a hint:\n%s", lastMessage(first))
	}
	if diff := cmp.Diff(dspyHintedSystem, second.Messages[0].Content); diff != "" {
		t.Errorf("hinted system message differs from DSPy's (-dspy +dspex):\n%s", diff)
	}
	if diff := cmp.Diff(dspyHintedUser, lastMessage(second)); diff != "" {
		t.Errorf("hinted user message differs from DSPy's (-dspy +dspex):\n%s", diff)
	}

	if diff := cmp.Diff(dspyFeedbackSystem, feedback.Messages[0].Content); diff != "" {
		t.Errorf("feedback system message differs from DSPy's (-dspy +dspex):\n%s", diff)
	}
	ask := lastMessage(feedback)
	for _, want := range []string{
		"[[ ## program_code ## ]]\nclass CoT: ...\n\n",
		"[[ ## modules_defn ## ]]\n" + dspyModulesDefn + "\n\n",
		"[[ ## program_inputs ## ]]\n{\n  \"context\": [\n    \"c1\"\n  ],\n  \"question\": \"q\"\n}\n\n",
		"[[ ## program_trajectory ## ]]\n[\n  {\n    \"module_name\": \"predict\",\n    \"inputs\": {\n      \"context\": [\n        \"c1\"\n      ],\n      \"question\": \"q\"\n    },\n    \"outputs\": {\n      \"reasoning\": \"Because.\",\n      \"answer\": 4\n    }\n  }\n]\n\n",
		// DSPy's dict(prediction) is in the order the adapter parsed
		// the fields: the signature's, reasoning first.
		"[[ ## program_outputs ## ]]\n{\n  \"reasoning\": \"Because.\",\n  \"answer\": 4\n}\n\n",
		"[[ ## reward_code ## ]]\ndef never(args, pred): return 0\n\n",
		"[[ ## target_threshold ## ]]\n1.0\n\n",
		"[[ ## reward_value ## ]]\n0.0\n\n",
		"[[ ## module_names ## ]]\n[\n  \"predict\"\n]\n\n",
	} {
		if !strings.Contains(ask, want) {
			t.Errorf("feedback request lacks %q:\n%s", want, ask)
		}
	}

	// The attempts sample at temperature 1.0 with rollout ids; the feedback
	// call uses the context's settings.
	rr := sim.rec.requests()
	for i, want := range []struct {
		temp    *float64
		rollout string
	}{{lm.Float(1), "0"}, {nil, ""}, {lm.Float(1), "1"}} {
		got := rr[i]
		if (got.Temperature == nil) != (want.temp == nil) || (got.Temperature != nil && *got.Temperature != *want.temp) || got.RolloutID != want.rollout {
			t.Errorf("request %d: temperature %v, rollout %q; want %v, %q", i, got.Temperature, got.RolloutID, want.temp, want.rollout)
		}
	}
	if pred.Usage != sim.rec.totalUsage() {
		t.Errorf("usage = %+v, want the attempts' and feedback's total %+v", pred.Usage, sim.rec.totalUsage())
	}
	if cot.Predict.Signature() != sigBefore || cot.Predict.Signature().IsInput(module.HintField) {
		t.Errorf("the original program was changed: %s", cot.Predict.Signature())
	}
}

func TestRefineStopsAtThreshold(t *testing.T) {
	sim := startRolloutSim(t, lmtest.Config{}, nil)
	ctx := module.WithLM(context.Background(), sim.model)
	always := module.Reward(func(module.Inputs, *example.Prediction) float64 { return 1 })
	if _, err := module.NewRefine(module.NewPredict(signature.MustParse("q -> a")), 3, always, 1).Forward(ctx, module.Inputs{"q": "x"}); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.srv.Requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1 (no feedback after a hit)", n)
	}
}

// draftAndPolish is a two-predictor program that passes its predictors
// inputs of its own making (no hint_ among them).
type draftAndPolish struct {
	Draft, Polish *module.Predict
}

func newDraftAndPolish() *draftAndPolish {
	return &draftAndPolish{
		Draft:  module.NewPredict(signature.MustParse("question -> draft")),
		Polish: module.NewPredict(signature.MustParse("question, draft -> answer")),
	}
}

func (p *draftAndPolish) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	d, err := p.Draft.Forward(ctx, module.Inputs{"question": in["question"]})
	if err != nil {
		return nil, err
	}
	return p.Polish.Forward(ctx, module.Inputs{"question": in["question"], "draft": d.String("draft")})
}

func (p *draftAndPolish) NamedPredictors() []module.NamedPredictor {
	return module.Children(module.Child{Name: "draft", Program: p.Draft}, module.Child{Name: "polish", Program: p.Polish})
}

func (p *draftAndPolish) Clone() module.Program {
	return &draftAndPolish{Draft: p.Draft.Copy(), Polish: p.Polish.Copy()}
}

func TestRefineHintsEachPredictor(t *testing.T) {
	cases := []struct {
		name    string
		adapter adapter.Adapter
		// firstTrajectory says whether the first attempt's predictor calls
		// are recorded (they are: wrapping the adapter keeps its fallback).
		firstTrajectory bool
	}{
		{"chat adapter with fallback", nil, true},
		{"chat adapter without fallback", &adapter.ChatAdapter{NoFallback: true}, true},
		{"json adapter", adapter.JSONAdapter{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := startRolloutSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
				feedbackRule(map[string]any{"draft": "Draft tersely.", "polish": "Polish harder."}),
				{Fields: map[string]any{"draft": "a draft", "answer": "an answer"}},
			}}}, nil)
			ctx := module.WithLM(context.Background(), sim.model)
			if c.adapter != nil {
				ctx = module.WithAdapter(ctx, c.adapter)
			}
			prog := newDraftAndPolish()
			if _, err := module.NewRefine(prog, 3, never, 1).Forward(ctx, module.Inputs{"question": "q"}); err != nil {
				t.Fatal(err)
			}
			reqs := sim.srv.Requests()
			if len(reqs) != 8 {
				t.Fatalf("server saw %d requests, want 8", len(reqs))
			}
			for i, want := range map[int]string{
				3: "[[ ## hint_ ## ]]\nDraft tersely.",
				4: "[[ ## hint_ ## ]]\nPolish harder.",
				6: "[[ ## hint_ ## ]]\nDraft tersely.",
				7: "[[ ## hint_ ## ]]\nPolish harder.",
			} {
				if !strings.Contains(lastMessage(reqs[i]), want) {
					t.Errorf("request %d lacks %q:\n%s", i, want, lastMessage(reqs[i]))
				}
			}
			for _, i := range []int{0, 1} {
				if strings.Contains(lastMessage(reqs[i]), "hint_") {
					t.Errorf("request %d of the first attempt has a hint", i)
				}
			}
			steps := `"module_name": "draft"`
			if got := strings.Contains(lastMessage(reqs[2]), steps); got != c.firstTrajectory {
				t.Errorf("first feedback has the trajectory: %v, want %v:\n%s", got, c.firstTrajectory, lastMessage(reqs[2]))
			}
			second := lastMessage(reqs[5])
			if !strings.Contains(second, steps) || !strings.Contains(second, `"module_name": "polish"`) {
				t.Errorf("second feedback lacks the trajectory:\n%s", second)
			}
			if traj := second[strings.Index(second, "program_trajectory"):strings.Index(second, "program_outputs")]; strings.Contains(traj, "hint_") {
				t.Errorf("the trajectory shows the hint:\n%s", traj)
			}
			if !strings.Contains(second, "[[ ## module_names ## ]]\n[\n  \"draft\",\n  \"polish\"\n]") {
				t.Errorf("module names:\n%s", second)
			}
			if prog.Draft.Signature().IsInput(module.HintField) || prog.Polish.Signature().IsInput(module.HintField) {
				t.Error("the original program was changed")
			}
		})
	}
}

// Predictors sharing one signature still get their own advice.
func TestRefineSharedSignature(t *testing.T) {
	sim := startRolloutSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		feedbackRule(map[string]any{"draft": "For the draft.", "polish": "For the polish."}),
	}}}, nil)
	sig := signature.MustParse("question, draft -> answer, draft2")
	prog := &draftAndPolish{Draft: module.NewPredict(signature.MustParse("question -> draft")), Polish: module.NewPredict(sig)}
	prog.Draft.SetSignature(sig) // both predictors now hold the same *Signature
	shared := &sharedSigProgram{prog}
	ctx := module.WithLM(context.Background(), sim.model)
	if _, err := module.NewRefine(shared, 2, never, 1).Forward(ctx, module.Inputs{"question": "q"}); err != nil {
		t.Fatal(err)
	}
	reqs := sim.srv.Requests()
	if len(reqs) != 5 {
		t.Fatalf("server saw %d requests, want 5", len(reqs))
	}
	if !strings.Contains(lastMessage(reqs[3]), "For the draft.") || !strings.Contains(lastMessage(reqs[4]), "For the polish.") {
		t.Errorf("hints:\n%s\n---\n%s", lastMessage(reqs[3]), lastMessage(reqs[4]))
	}
}

// sharedSigProgram calls both predictors with the same inputs.
type sharedSigProgram struct{ *draftAndPolish }

func (p *sharedSigProgram) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	in = module.Inputs{"question": in["question"], "draft": "d"}
	if _, err := p.Draft.Forward(ctx, in); err != nil {
		return nil, err
	}
	return p.Polish.Forward(ctx, in)
}

func (p *sharedSigProgram) Clone() module.Program {
	return &sharedSigProgram{p.draftAndPolish.Clone().(*draftAndPolish)}
}

func TestRefineFeedbackFailure(t *testing.T) {
	script := &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "[[ ## module_names ## ]]", Raw: "no fields here"},
		{Fields: map[string]any{"a": "x"}},
	}}
	t.Run("counts as a failed attempt", func(t *testing.T) {
		sim := startRolloutSim(t, lmtest.Config{Script: script}, nil)
		ctx := module.WithLM(context.Background(), sim.model)
		pred, err := module.NewRefine(module.NewPredict(signature.MustParse("q -> a")), 2, never, 1).Forward(ctx, module.Inputs{"q": "x"})
		if err != nil {
			t.Fatal(err)
		}
		if pred.String("a") != "x" {
			t.Errorf("pred = %v", pred.Map())
		}
		reqs := sim.srv.Requests()
		// attempt, feedback (chat), feedback (JSON fallback), attempt without advice
		if len(reqs) != 4 || strings.Contains(lastMessage(reqs[3]), "hint_") {
			t.Fatalf("requests = %d; last:\n%s", len(reqs), lastMessage(reqs[len(reqs)-1]))
		}
	})
	t.Run("ends the run past the fail count", func(t *testing.T) {
		sim := startRolloutSim(t, lmtest.Config{Script: script}, nil)
		ctx := module.WithLM(context.Background(), sim.model)
		_, err := module.NewRefine(module.NewPredict(signature.MustParse("q -> a")), 3, never, 1, module.WithFailCount(1)).Forward(ctx, module.Inputs{"q": "x"})
		var pe *adapter.ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "refine feedback") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRefineConcurrentUse(t *testing.T) {
	sim := startRolloutSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		feedbackRule(map[string]any{"predict": "Be brief."}),
	}}}, nil)
	ctx := module.WithLM(context.Background(), sim.model)
	r := module.NewRefine(module.NewChainOfThought(signature.MustParse("question -> answer")), 2, never, 1)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = r.Forward(ctx, module.Inputs{"question": strings.Repeat("q", i+1)})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.srv.Requests()); n != 12 {
		t.Errorf("server saw %d requests, want 12", n)
	}
	var hinted int
	for _, req := range sim.srv.Requests() {
		if strings.Contains(lastMessage(req), "[[ ## hint_ ## ]]\nBe brief.") {
			hinted++
		}
	}
	if hinted != 4 {
		t.Errorf("%d hinted requests, want 4", hinted)
	}
}

func TestOfferFeedbackSignature(t *testing.T) {
	sig := module.OfferFeedbackSignature()
	var names []string
	for _, f := range sig.Fields() {
		names = append(names, f.Name)
	}
	want := []string{"program_code", "modules_defn", "program_inputs", "program_trajectory", "program_outputs",
		"reward_code", "target_threshold", "reward_value", "module_names", "discussion", "advice"}
	if !slices.Equal(names, want) || sig.Name() != "OfferFeedback" {
		t.Errorf("fields = %v, name %s", names, sig.Name())
	}
	msgs, err := (&adapter.ChatAdapter{}).Format(sig, nil, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dspyFeedbackSystem, msgs[0].Content); diff != "" {
		t.Errorf("system message differs from DSPy's (-dspy +dspex):\n%s", diff)
	}
}

// Prompts written by DSPy 3.4.1 for the same signatures and inputs.

const dspyFeedbackSystem = "Your input fields are:\n" +
	"1. `program_code` (str): The code of the program that we are analyzing\n" +
	"2. `modules_defn` (str): The definition of each module in the program, including its I/O\n" +
	"3. `program_inputs` (str): The inputs to the program that we are analyzing\n" +
	"4. `program_trajectory` (str): The trajectory of the program's execution, showing each module's I/O\n" +
	"5. `program_outputs` (str): The outputs of the program that we are analyzing\n" +
	"6. `reward_code` (str): The code of the reward function that we are analyzing\n" +
	"7. `target_threshold` (float): The target threshold for the reward function\n" +
	"8. `reward_value` (float): The reward value assigned to the program's outputs\n" +
	"9. `module_names` (list[str]): The names of the modules in the program, for which we seek advice\n" +
	"Your output fields are:\n" +
	"1. `discussion` (str): Discussing blame of where each module went wrong, if it did\n" +
	"2. `advice` (dict[str, str]): For each module, describe very concretely, in this order: the specific scenarios in which it has made mistakes in the past and what each mistake was, followed by what it should do differently in that kind ofscenario in the future. If the module is not to blame, write N/A.\n" +
	"All interactions will be structured in the following way, with the appropriate values filled in.\n" +
	"\n" +
	"[[ ## program_code ## ]]\n" +
	"{program_code}\n" +
	"\n" +
	"[[ ## modules_defn ## ]]\n" +
	"{modules_defn}\n" +
	"\n" +
	"[[ ## program_inputs ## ]]\n" +
	"{program_inputs}\n" +
	"\n" +
	"[[ ## program_trajectory ## ]]\n" +
	"{program_trajectory}\n" +
	"\n" +
	"[[ ## program_outputs ## ]]\n" +
	"{program_outputs}\n" +
	"\n" +
	"[[ ## reward_code ## ]]\n" +
	"{reward_code}\n" +
	"\n" +
	"[[ ## target_threshold ## ]]\n" +
	"{target_threshold}\n" +
	"\n" +
	"[[ ## reward_value ## ]]\n" +
	"{reward_value}\n" +
	"\n" +
	"[[ ## module_names ## ]]\n" +
	"{module_names}\n" +
	"\n" +
	"[[ ## discussion ## ]]\n" +
	"{discussion}\n" +
	"\n" +
	"[[ ## advice ## ]]\n" +
	"{advice}        # note: the value you produce must adhere to the JSON schema: {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}}\n" +
	"\n" +
	"[[ ## completed ## ]]\n" +
	"In adhering to this structure, your objective is: \n" +
	"        In the discussion, assign blame to each module that contributed to the final reward being below the threshold, if\n" +
	"        any. Then, prescribe concrete advice of how the module should act on its future input when we retry the process, if\n" +
	"        it were to receive the same or similar inputs. If a module is not to blame, the advice should be N/A.\n" +
	"        The module will not see its own history, so it needs to rely on entirely concrete and actionable advice from you\n" +
	"        to avoid the same mistake on the same or similar inputs."

const dspyModulesDefn = "--------------------------------------------------------------------------------\n" +
	"Module predict\n" +
	"\tInput Fields:\n" +
	"\t\t1. `question` (str): \n" +
	"\t\t2. `context` (list[str]):\n" +
	"\tOutput Fields:\n" +
	"\t\t1. `reasoning` (str): \n" +
	"\t\t2. `answer` (int):\n" +
	"\tOriginal Instructions: \n" +
	"\t\tGiven the fields `question`, `context`, produce the fields `answer`.\n" +
	"--------------------------------------------------------------------------------"

const dspyHintedSystem = "Your input fields are:\n" +
	"1. `question` (str): \n" +
	"2. `context` (list[str]): \n" +
	"3. `hint_` (str): A hint to the module from an earlier run\n" +
	"Your output fields are:\n" +
	"1. `reasoning` (str): \n" +
	"2. `answer` (int):\n" +
	"All interactions will be structured in the following way, with the appropriate values filled in.\n" +
	"\n" +
	"[[ ## question ## ]]\n" +
	"{question}\n" +
	"\n" +
	"[[ ## context ## ]]\n" +
	"{context}\n" +
	"\n" +
	"[[ ## hint_ ## ]]\n" +
	"{hint_}\n" +
	"\n" +
	"[[ ## reasoning ## ]]\n" +
	"{reasoning}\n" +
	"\n" +
	"[[ ## answer ## ]]\n" +
	"{answer}        # note: the value you produce must be a single int value\n" +
	"\n" +
	"[[ ## completed ## ]]\n" +
	"In adhering to this structure, your objective is: \n" +
	"        Given the fields `question`, `context`, produce the fields `answer`."

const dspyHintedUser = "[[ ## question ## ]]\n" +
	"q\n" +
	"\n" +
	"[[ ## context ## ]]\n" +
	"[\"c1\"]\n" +
	"\n" +
	"[[ ## hint_ ## ]]\n" +
	"Answer with one word.\n" +
	"\n" +
	"Respond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]` (must be formatted as a valid Python int), and then ending with the marker for `[[ ## completed ## ]]`."

func TestRefineWithoutModule(t *testing.T) {
	reward := module.Reward(func(module.Inputs, *example.Prediction) float64 { return 1 })
	_, err := module.NewRefine(nil, 2, reward, 1).Forward(context.Background(), module.Inputs{"q": "x"})
	if err == nil || !strings.Contains(err.Error(), "Refine has no module to run") {
		t.Errorf("err = %v, want one saying Refine has no module", err)
	}
}
