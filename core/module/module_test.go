package module

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// echoLM answers every request with fixed field values in chat format and
// records the requests it saw. It stands in for the network edge only.
type echoLM struct {
	name   string
	answer string
	mu     sync.Mutex
	reqs   []*lm.Request
}

func (e *echoLM) Model() string { return e.name }
func (e *echoLM) Complete(ctx context.Context, r *lm.Request) (*lm.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, &lm.Error{Kind: lm.ErrCanceled, Err: err}
	}
	e.mu.Lock()
	e.reqs = append(e.reqs, r)
	e.mu.Unlock()
	return &lm.Response{Choices: []lm.Choice{{Text: e.answer}}, Usage: lm.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12}}, nil
}

func (e *echoLM) last() *lm.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reqs[len(e.reqs)-1]
}

func TestPredict(t *testing.T) {
	sig := signature.MustParse("question -> answer: int")
	model := &echoLM{name: "m", answer: "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"}
	ctx := WithLM(context.Background(), model)

	p := NewPredict(sig, WithConfig(lm.Params{Temperature: lm.Float(0.3), MaxTokens: lm.Int(100)}),
		WithDemos(example.New(map[string]any{"question": "1+1?", "answer": 2})))
	pred, err := p.Forward(WithParams(ctx, lm.Params{Temperature: lm.Float(0.9)}), Inputs{"question": "2+2?"})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := pred.Int("answer"); n != 4 || pred.Usage.TotalTokens != 12 {
		t.Fatalf("prediction = %v usage %+v", pred.Map(), pred.Usage)
	}
	r := model.last()
	if *r.Temperature != 0.9 || *r.MaxTokens != 100 {
		t.Errorf("params: call override must win over predictor config: %+v", r.Params)
	}
	if len(r.Messages) != 4 || !strings.Contains(r.Messages[1].Content, "1+1?") {
		t.Errorf("demo not in prompt: %+v", r.Messages)
	}
}

func TestPredictErrors(t *testing.T) {
	sig := signature.MustParse("question, hint: str | None -> answer")
	p := NewPredict(sig)
	if _, err := p.Forward(context.Background(), Inputs{"question": "q"}); !errors.Is(err, ErrNoLM) {
		t.Errorf("no LM: %v", err)
	}
	model := &echoLM{answer: "no markers"}
	ctx := WithAdapter(WithLM(context.Background(), model), &adapter.ChatAdapter{NoFallback: true})
	if _, err := p.Forward(ctx, Inputs{"hint": "h"}); err == nil || !strings.Contains(err.Error(), `missing input field "question"`) {
		t.Errorf("missing input: %v", err)
	}
	_, err := p.Forward(ctx, Inputs{"question": "q"}) // optional hint may be absent
	if !adapter.IsParseError(err) {
		t.Errorf("unparsable answer: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Forward(cancelled, Inputs{"question": "q"}); !errors.Is(err, lm.ErrCanceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestOwnLMWins(t *testing.T) {
	sig := signature.MustParse("q -> a")
	ctxLM := &echoLM{name: "ctx", answer: "[[ ## a ## ]]\nctx"}
	own := &echoLM{name: "own", answer: "[[ ## a ## ]]\nown"}
	p := NewPredict(sig, WithOwnLM(own))
	pred, err := p.Forward(WithLM(context.Background(), ctxLM), Inputs{"q": "x"})
	if err != nil || pred.String("a") != "own" {
		t.Fatalf("pred %v err %v", pred, err)
	}
}

func TestChainOfThought(t *testing.T) {
	model := &echoLM{answer: "[[ ## reasoning ## ]]\nBecause.\n\n[[ ## answer ## ]]\nyes"}
	cot := NewChainOfThought(signature.MustParse("question -> answer"))
	pred, err := cot.Forward(WithLM(context.Background(), model), Inputs{"question": "?"})
	if err != nil {
		t.Fatal(err)
	}
	if pred.String("reasoning") != "Because." || pred.String("answer") != "yes" {
		t.Errorf("pred = %v", pred.Map())
	}
	names := cot.NamedPredictors()
	if len(names) != 1 || names[0].Name != "predict" {
		t.Errorf("named predictors = %+v", names)
	}
	if got := cot.Predict.Signature().String(); got != "question -> reasoning, answer" {
		t.Errorf("signature = %s", got)
	}
	// A clone is independent of the original.
	c := CloneAs(cot)
	c.Predict.SetDemos([]example.Example{example.New(map[string]any{"question": "x"})})
	if len(cot.Predict.Demos()) != 0 {
		t.Error("clone shares demos with the original")
	}
}

func TestPredictCopyDoesNotShareParams(t *testing.T) {
	p := NewPredict(signature.MustParse("q -> a"), WithConfig(lm.Params{Stop: []string{"x"}, Extra: map[string]any{"k": 1}}))
	c := p.Copy()
	c.Params().Stop[0] = "changed"
	c.Params().Extra["k"] = 2
	if got := p.Params(); got.Stop[0] != "x" || got.Extra["k"] != 1 {
		t.Errorf("changing the copy's params changed the original's: %+v", got)
	}
}

type qIn struct {
	Question string `json:"question"`
}

type qOut struct {
	Reasoning string `json:"reasoning"`
	Answer    int    `json:"answer" desc:"a number"`
}

func TestTyped(t *testing.T) {
	model := &echoLM{answer: "[[ ## reasoning ## ]]\nsum\n\n[[ ## answer ## ]]\n4"}
	qa, err := NewTyped[qIn, qOut](NewChainOfThought)
	if err != nil {
		t.Fatal(err)
	}
	out, err := qa.Call(WithLM(context.Background(), model), qIn{Question: "2+2?"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Answer != 4 || out.Reasoning != "sum" {
		t.Errorf("out = %+v", out)
	}
	if got := qa.Module().(*ChainOfThought).Predict.Signature().String(); got != "question -> reasoning, answer: int" {
		t.Errorf("signature = %s", got)
	}
}

// A typed input's nested values keep their order: an example.Object in an
// `any` field prints in its own key order, as a Python dict would.
func TestTypedKeepsNestedOrder(t *testing.T) {
	type in struct {
		Query any `json:"query"`
	}
	type out struct {
		Answer string `json:"answer"`
	}
	model := &echoLM{answer: "[[ ## answer ## ]]\nok"}
	p, err := NewTyped[in, out](func(sig *signature.Signature, _ ...PredictOption) *Predict { return NewPredict(sig) })
	if err != nil {
		t.Fatal(err)
	}
	q := example.Object{{Key: "zeta", Value: 1}, {Key: "alpha", Value: example.Object{{Key: "y", Value: 2}, {Key: "x", Value: 3}}}}
	if _, err := p.Call(WithLM(context.Background(), model), in{Query: q}); err != nil {
		t.Fatal(err)
	}
	msgs := model.last().Messages
	if want := `{"zeta": 1, "alpha": {"y": 2, "x": 3}}`; !strings.Contains(msgs[len(msgs)-1].Content, want) {
		t.Errorf("prompt lacks %s:\n%s", want, msgs[len(msgs)-1].Content)
	}
}

func TestPredictConcurrentUse(t *testing.T) {
	model := &echoLM{answer: "[[ ## a ## ]]\nok"}
	p := NewPredict(signature.MustParse("q -> a"))
	ctx := WithLM(context.Background(), model)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := p.Forward(ctx, Inputs{"q": i}); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			p.SetDemos([]example.Example{example.New(map[string]any{"q": i, "a": "x"})})
			p.SetSignature(p.Signature().WithInstructions("v2"))
		}()
	}
	wg.Wait()
}

// Demos with keys the signature lacks are used as DSPy uses them (the keys
// left out of the prompt), and reported once per set of demos with a
// DemoExtraKeys event naming the keys; "augmented" is DSPy's own mark.
func TestPredictDemoExtraKeys(t *testing.T) {
	bus := event.NewBus()
	var mu sync.Mutex
	var got []*event.DemoKeysInfo
	if _, err := bus.Subscribe(event.SubscribeOptions{Kinds: []event.Kind{event.DemoExtraKeys}, Policy: event.Block}, func(ev event.Event) {
		mu.Lock()
		got = append(got, ev.Data.(*event.DemoKeysInfo))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	model := &echoLM{name: "m", answer: "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"}
	ctx := WithLM(event.WithBus(context.Background(), bus), model)
	demos := []example.Example{
		example.FromObject(example.Object{{Key: "question", Value: "1+1?"}, {Key: "answer", Value: "2"}, {Key: "augmented", Value: true}}),
		example.FromObject(example.Object{{Key: "question", Value: "2+3?"}, {Key: "source", Value: "wiki"}, {Key: "answer", Value: "5"}, {Key: "id", Value: 7}}),
	}
	p := NewPredict(signature.MustParse("question -> answer"), WithDemos(demos...))
	for range 2 {
		if _, err := p.Forward(ctx, Inputs{"question": "2+2?"}); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := model.last().Messages; len(msgs) != 6 || strings.Contains(msgs[3].Content, "wiki") {
		t.Errorf("the demo with extra keys is not used as DSPy uses it: %d messages, %q", len(msgs), msgs[3].Content)
	}
	p.SetDemos(demos[1:])
	if _, err := p.Forward(ctx, Inputs{"question": "2+2?"}); err != nil {
		t.Fatal(err)
	}
	bus.Close()
	want := []event.DemoKeysInfo{
		{Signature: "question -> answer", Demo: 2, Keys: []string{"source", "id"}},
		{Signature: "question -> answer", Demo: 1, Keys: []string{"source", "id"}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d (once per set of demos): %+v", len(got), len(want), got)
	}
	for i := range want {
		if g := got[i]; g.Signature != want[i].Signature || g.Demo != want[i].Demo || strings.Join(g.Keys, ",") != strings.Join(want[i].Keys, ",") {
			t.Errorf("event %d = %+v, want %+v", i, *g, want[i])
		}
	}
}
