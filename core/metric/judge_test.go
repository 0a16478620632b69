package metric_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

func startSim(t testing.TB, script *lmtest.Script) lm.LM {
	t.Helper()
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Script: script})
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

func TestJudgeAgainstSimulator(t *testing.T) {
	model := startSim(t, &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "[[ ## pred_answer ## ]]\nParis", Fields: map[string]any{"correct": true, "feedback": "Same city.", "rating": 5}},
		{Match: "", Fields: map[string]any{"correct": false, "feedback": "Different city.", "rating": 2, "reasoning": "Lyon is not Paris."}},
	}})
	ctx := module.WithLM(context.Background(), model)
	ex := example.New(map[string]any{"question": "Capital of France?", "answer": "Paris"}).WithInputs("question")

	cases := []struct {
		name         string
		sig          string
		opts         []metric.JudgeOption
		pred         string
		want         float64
		wantFeedback string
	}{
		{"bool correct", "question, gold_answer, pred_answer -> correct: bool, feedback", nil, "Paris", 1, "Same city."},
		{"bool wrong", "question, gold_answer, pred_answer -> correct: bool, feedback", nil, "Lyon", 0, "Different city."},
		{"int rating", "question, expected_answer, predicted_answer -> rating: int", nil, "Lyon", 2, ""},
		{"chain of thought gives reasoning as feedback", "question, gold_answer, pred_answer -> correct: bool", []metric.JudgeOption{metric.JudgeChainOfThought()}, "Lyon", 0, "Lyon is not Paris."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err := metric.Judge(signature.MustParse(c.sig), c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			r, err := j.Score(ctx, ex, example.NewPrediction(map[string]any{"answer": c.pred}))
			if err != nil {
				t.Fatal(err)
			}
			if r.Score != c.want || r.Feedback != c.wantFeedback {
				t.Errorf("got score %v feedback %q, want %v %q", r.Score, r.Feedback, c.want, c.wantFeedback)
			}
			if r.Usage.TotalTokens == 0 {
				t.Error("no usage reported")
			}
		})
	}

	t.Run("own LM", func(t *testing.T) {
		j, err := metric.Judge(signature.MustParse("gold_answer, pred_answer -> correct: bool"), metric.JudgeLM(model), metric.JudgeName("same"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := j.Score(context.Background(), ex, example.NewPrediction(map[string]any{"answer": "Paris"}))
		if err != nil || r.Score != 1 || j.Name() != "same" {
			t.Errorf("got %+v, %v, name %q", r, err, j.Name())
		}
	})
	t.Run("missing field", func(t *testing.T) {
		j, _ := metric.Judge(signature.MustParse("question, gold_answer, pred_response -> correct: bool"))
		_, err := j.Score(ctx, ex, example.NewPrediction(map[string]any{"answer": "Paris"}))
		var fe *metric.FieldError
		if !errors.Is(err, metric.ErrMissingField) || !errors.As(err, &fe) || fe.Field != "response" || !fe.InPrediction {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("optional input left out", func(t *testing.T) {
		j, _ := metric.Judge(signature.MustParse("gold_answer, pred_answer, hint: str | None -> correct: bool"))
		if r, err := j.Score(ctx, ex, example.NewPrediction(map[string]any{"answer": "Paris"})); err != nil || r.Score != 1 {
			t.Errorf("got %+v, %v", r, err)
		}
	})
}

func TestJudgeRejectsBadSignatures(t *testing.T) {
	for _, sig := range []string{"question, answer -> verdict", "question -> verdict: list[str]"} {
		if _, err := metric.Judge(signature.MustParse(sig)); err == nil || !strings.Contains(err.Error(), "the score must be bool, int or float") {
			t.Errorf("%s: err = %v", sig, err)
		}
	}
	if _, err := metric.Judge(nil); err == nil {
		t.Error("nil signature accepted")
	}
}
