package module_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// An attempt with advice runs through Refine's adapter wrapper, which keeps
// ChatAdapter's JSON fallback: a hinted answer that does not parse is asked
// again with JSONAdapter, as DSPy's Refine (a ChatAdapter subclass) does.
func TestRefineWithAdviceKeepsJSONFallback(t *testing.T) {
	sim := startRolloutSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		feedbackRule(map[string]any{"predict": "Answer with one word."}),
		{Match: "[[ ## hint_ ## ]]", Raw: "no sections at all", Times: 1},
		{Fields: map[string]any{"reasoning": "Because.", "answer": 4}},
	}}}, nil)
	ctx := module.WithLM(context.Background(), sim.model)
	cot := module.NewChainOfThought(signature.MustParse("question -> answer: int"))
	if _, err := module.NewRefine(cot, 2, never, 1).Forward(ctx, module.Inputs{"question": "2+2?"}); err != nil {
		t.Fatal(err)
	}
	fellBack := false
	for _, r := range sim.srv.Requests() {
		if strings.Contains(r.Messages[0].Content, "Outputs will be a JSON object") && strings.Contains(lastMessage(r), "[[ ## hint_ ## ]]") {
			fellBack = true
		}
	}
	if !fellBack {
		t.Errorf("the hinted attempt did not fall back to JSONAdapter; requests: %d", len(sim.srv.Requests()))
	}
}
