package module_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

type Review struct {
	Headline string   `json:"headline"`
	Score    float64  `json:"score"`
	Tags     []string `json:"tags"`
}

func startSim(t testing.TB, cfg lmtest.Config) lm.LM {
	t.Helper()
	srv, err := lmtest.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	model, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_NO_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	return model
}

// Every output type round-trips through both adapters, the real HTTP client
// and the simulator, which writes its answers without DSPEx's adapter code.
func TestPredictAgainstSimulator(t *testing.T) {
	model := startSim(t, lmtest.Config{Seed: 3})
	sig, err := signature.ParseWith(
		"text, hints: list[str] -> count: int, score: float, ok: bool, tags: list[str], label: Literal['pos', 'neg'], counts: dict[str, int], maybe: int | None, review: Review",
		signature.Types{"Review": signature.MustObjectOf[Review]()})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []adapter.Adapter{&adapter.ChatAdapter{NoFallback: true}, adapter.JSONAdapter{}} {
		t.Run(a.Name(), func(t *testing.T) {
			ctx := module.WithAdapter(module.WithLM(context.Background(), model), a)
			cot := module.NewChainOfThought(sig)
			for i := range 5 {
				pred, err := cot.Forward(ctx, module.Inputs{"text": fmt.Sprintf("review %d", i), "hints": []string{"a", "b"}})
				if err != nil {
					t.Fatalf("input %d: %v", i, err)
				}
				if _, err := pred.Int("count"); err != nil {
					t.Error(err)
				}
				if l := pred.String("label"); l != "pos" && l != "neg" {
					t.Errorf("label = %q", l)
				}
				r, _ := pred.Get("review")
				if m, ok := r.(map[string]any); !ok || m["headline"] == nil {
					t.Errorf("review = %#v", r)
				}
				if pred.Usage.TotalTokens == 0 {
					t.Error("no token usage reported")
				}
			}
		})
	}
}

func TestTypedErrorsFromSimulatorFaults(t *testing.T) {
	cases := []struct {
		fault string
		want  error
	}{
		{"429:retry_after=3s", lm.ErrRateLimited},
		{"500", lm.ErrServer},
		{"malformed", lm.ErrBadResponse},
		{"reset", lm.ErrConnection},
	}
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			f, err := lmtest.ParseFault(c.fault)
			if err != nil {
				t.Fatal(err)
			}
			model := startSim(t, lmtest.Config{Faults: []lmtest.Fault{f}})
			_, err = module.NewPredict(signature.MustParse("q -> a")).Forward(module.WithLM(context.Background(), model), module.Inputs{"q": "x"})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if c.want == lm.ErrRateLimited && lm.RetryAfter(err) != 3*time.Second {
				t.Errorf("Retry-After = %v", lm.RetryAfter(err))
			}
		})
	}
	t.Run("hang with deadline", func(t *testing.T) {
		f, _ := lmtest.ParseFault("hang")
		model := startSim(t, lmtest.Config{Faults: []lmtest.Fault{f}})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := module.NewPredict(signature.MustParse("q -> a")).Forward(module.WithLM(ctx, model), module.Inputs{"q": "x"})
		if !errors.Is(err, lm.ErrTimeout) || time.Since(start) > 5*time.Second {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	})
	t.Run("truncated answer is a parse error after the JSON fallback", func(t *testing.T) {
		f, _ := lmtest.ParseFault("truncated")
		model := startSim(t, lmtest.Config{Faults: []lmtest.Fault{f}})
		_, err := module.NewPredict(signature.MustParse("q -> a, b: int")).Forward(module.WithLM(context.Background(), model), module.Inputs{"q": "x"})
		var pe *adapter.ParseError
		if !errors.As(err, &pe) || pe.Adapter != "JSONAdapter" || pe.Raw == "" {
			t.Fatalf("err = %v", err)
		}
	})
}

func ExampleNewChainOfThought() {
	srv, _ := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "capital of France", Fields: map[string]any{"reasoning": "It is Paris.", "answer": "Paris"}},
	}}})
	defer srv.Close()
	model, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "UNSET_KEY"})

	ctx := module.WithLM(context.Background(), model)
	qa := module.NewChainOfThought(signature.MustParse("question -> answer"))
	pred, err := qa.Forward(ctx, module.Inputs{"question": "What is the capital of France?"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pred.String("reasoning"), pred.String("answer"))
	// Output: It is Paris. Paris
}
