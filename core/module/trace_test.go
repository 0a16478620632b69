package module

import (
	"context"
	"sync"
	"testing"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/signature"
)

func TestSpanTreeOfChainOfThought(t *testing.T) {
	bus := event.NewBus()
	var mu sync.Mutex
	var evs []event.Event
	bus.Subscribe(event.SubscribeOptions{Name: "test"}, func(ev event.Event) {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
	})
	ctx, run := event.StartRun(event.WithBus(context.Background(), bus))
	model := &echoLM{name: "m", answer: "[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\n42"}
	cot := NewChainOfThought(signature.MustParse("question -> answer"))
	if _, err := cot.Forward(WithLM(ctx, model), Inputs{"question": "q"}); err != nil {
		t.Fatal(err)
	}
	bus.Close()

	byKind := map[event.Kind][]event.Event{}
	for _, ev := range evs {
		if ev.RunID != run.RunID {
			t.Errorf("%s in run %s, want %s", ev.Kind, ev.RunID, run.RunID)
		}
		byKind[ev.Kind] = append(byKind[ev.Kind], ev)
	}
	mods := byKind[event.ModuleStart]
	lms := byKind[event.LMEnd]
	if len(mods) != 2 || len(byKind[event.ModuleEnd]) != 2 || len(lms) != 1 || len(byKind[event.LMStart]) != 1 {
		t.Fatalf("events: %v", byKind)
	}
	cotSpan, predSpan := mods[0], mods[1]
	if cotSpan.Data.(*event.ModuleCall).Module != "ChainOfThought" || predSpan.Data.(*event.ModuleCall).Module != "Predict" {
		t.Fatalf("module order: %v, %v", cotSpan.Data, predSpan.Data)
	}
	if cotSpan.ParentID != run.SpanID || predSpan.ParentID != cotSpan.SpanID || lms[0].ParentID != predSpan.SpanID {
		t.Errorf("tree: run %s → cot %s(parent %s) → predict %s(parent %s) → lm parent %s",
			run.SpanID, cotSpan.SpanID, cotSpan.ParentID, predSpan.SpanID, predSpan.ParentID, lms[0].ParentID)
	}
	call := lms[0].Data.(*event.LMCall)
	if call.PromptTokens != 10 || call.CompletionTokens != 2 || len(call.Messages) != 2 || call.Completions[0] == "" || call.Adapter != "ChatAdapter" {
		t.Errorf("lm call = %+v", call)
	}
	end := byKind[event.ModuleEnd][1].Data.(*event.ModuleCall) // the outer one ends last
	if end.Module != "ChainOfThought" || end.Outputs["answer"] != "42" || end.Inputs["question"] != "q" {
		t.Errorf("module end = %+v", end)
	}
}

func TestParseFailureAndFallbackEvents(t *testing.T) {
	bus := event.NewBus()
	var mu sync.Mutex
	kinds := map[event.Kind]int{}
	bus.Subscribe(event.SubscribeOptions{Kinds: []event.Kind{event.ParseFailure, event.AdapterFallback}}, func(ev event.Event) {
		mu.Lock()
		kinds[ev.Kind]++
		mu.Unlock()
	})
	model := &echoLM{answer: "not in any format"}
	ctx := WithLM(event.WithBus(context.Background(), bus), model)
	_, err := NewPredict(signature.MustParse("q -> a: int")).Forward(ctx, Inputs{"q": 1})
	bus.Close()
	if err == nil {
		t.Fatal("no error")
	}
	if kinds[event.ParseFailure] != 2 || kinds[event.AdapterFallback] != 1 {
		t.Errorf("events = %v", kinds)
	}
}
