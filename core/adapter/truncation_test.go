package adapter

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/signature"
)

// A completion cut off at max_tokens that does not parse says so, and the
// LM call's finish reasons reach the event (and from there the trace).
func TestTruncatedAnswerParseError(t *testing.T) {
	srv, err := lmtest.Start(t.Context(), lmtest.Config{
		Faults: []lmtest.Fault{{Kind: lmtest.FaultTruncated, FirstN: 1}},
		Script: &lmtest.Script{Rules: []lmtest.Rule{{Fields: map[string]any{
			"answer": "Paris is the capital of France.", "notes": "It has been since the 10th century."}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	model, err := openai.New(openai.Config{Model: "sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_NO_SUCH_KEY"})
	if err != nil {
		t.Fatal(err)
	}

	bus := event.NewBus()
	var mu sync.Mutex
	var finishes [][]string
	if _, err := bus.Subscribe(event.SubscribeOptions{Kinds: []event.Kind{event.LMEnd}}, func(ev event.Event) {
		mu.Lock()
		finishes = append(finishes, ev.Data.(*event.LMCall).FinishReasons)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	ctx := event.WithBus(t.Context(), bus)
	req := Request{Signature: signature.MustParse("question -> answer, notes"),
		Inputs: map[string]any{"question": "Capital of France?"}, Params: lm.Params{MaxTokens: lm.Int(64)}}

	_, err = Call(ctx, &ChatAdapter{NoFallback: true}, model, req)
	var pe *ParseError
	if !errors.As(err, &pe) || !pe.Truncated || pe.MaxTokens != 64 {
		t.Fatalf("err = %v; want a ParseError marked truncated at max_tokens 64", err)
	}
	for _, want := range []string{`cut off at the token limit (finish_reason "length") of max_tokens=64`, "consider a larger max_tokens"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// The same request answered in full parses, and is not called truncated.
	res, err := Call(ctx, &ChatAdapter{NoFallback: true}, model, req)
	if err != nil || res.Outputs[0]["notes"] != "It has been since the 10th century." {
		t.Fatalf("full answer: %v, %v", res, err)
	}
	bus.Close()
	if want := [][]string{{"length"}, {"stop"}}; !slices.EqualFunc(finishes, want, slices.Equal) {
		t.Errorf("finish reasons in LM events = %v, want %v", finishes, want)
	}
}

// A parse failure of a complete answer does not blame the token limit.
func TestUntruncatedParseErrorSaysNothingOfMaxTokens(t *testing.T) {
	m := &scriptedLM{answers: []string{"no fields at all"}}
	_, err := Call(t.Context(), &ChatAdapter{NoFallback: true}, m, Request{Signature: signature.MustParse("q -> a"), Inputs: map[string]any{"q": "x"}})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Truncated || strings.Contains(err.Error(), "max_tokens") {
		t.Fatalf("err = %v", err)
	}
}
