package module

import (
	"context"
	"testing"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// cannedLM answers every request at once with the same chat-format text.
type cannedLM struct{ text string }

func (cannedLM) Model() string { return "canned" }
func (c cannedLM) Complete(context.Context, *lm.Request) (*lm.Response, error) {
	return &lm.Response{Choices: []lm.Choice{{Text: c.text, FinishReason: "stop"}}}, nil
}

// A ChainOfThought call's own work (format, parse, prediction; no HTTP)
// stays within an allocation budget. It was 46 on Go 1.26 before the
// prediction stopped being built twice (a sorted copy of its fields,
// replaced at once) and its field order stopped sorting the keys when
// every field is an output; 34 then, 28 since ChatAdapter.Parse keeps
// sections as ranges of lines, and 25 since formatting and the prediction
// stopped copying the signature's fields and the user message's parts
// are allocated once; every LM call also keeps an lm.CallStats (one
// allocation with its context): 26. The budget leaves room for the race
// detector's own two allocations.
func TestPredictAllocations(t *testing.T) {
	cot := NewChainOfThought(signature.MustParse("question -> answer: int"))
	ctx := WithLM(context.Background(), cannedLM{text: "[[ ## reasoning ## ]]\nTwo plus two is four.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"})
	inputs := Inputs{"question": "What is two plus two?"}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := cot.Forward(ctx, inputs); err != nil {
			t.Fatal(err)
		}
	})
	const budget = 28
	t.Logf("%.0f allocations per call", allocs)
	if allocs > budget {
		t.Errorf("%.0f allocations per call, budget %d", allocs, budget)
	}
}
