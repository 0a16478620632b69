package evaluate_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

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

// sums returns n examples "What is i+i?" → 2i, and a script answering the
// even ones correctly (the odd ones get placeholder sentences).
func sums(n int) ([]example.Example, *lmtest.Script) {
	var devset []example.Example
	script := &lmtest.Script{}
	for i := range n {
		q := fmt.Sprintf("What is %d+%d?", i, i)
		devset = append(devset, example.New(map[string]any{"question": q, "answer": fmt.Sprint(2 * i)}).WithInputs("question"))
		if i%2 == 0 {
			script.Rules = append(script.Rules, lmtest.Rule{Match: q, Fields: map[string]any{"answer": fmt.Sprint(2 * i)}})
		}
	}
	return devset, script
}

func TestEvaluatePredictAgainstSimulator(t *testing.T) {
	devset, script := sums(40)
	ctx := module.WithLM(context.Background(), startSim(t, lmtest.Config{Script: script}))
	prog := module.NewPredict(signature.MustParse("question -> answer"))

	res, err := evaluate.Run(ctx, prog, devset, metric.ExactMatch("answer"), evaluate.Options{Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Score != 50 || res.Scored != 40 || res.Usage.TotalTokens == 0 {
		t.Errorf("score %v scored %d usage %+v", res.Score, res.Scored, res.Usage)
	}
	for i, er := range res.Results {
		if got, want := er.Score, float64(1-i%2); got != want || er.Usage.TotalTokens == 0 {
			t.Errorf("example %d: score %v usage %+v", i, got, er.Usage)
		}
	}

	t.Run("LM judge", func(t *testing.T) {
		// The judge's prompt carries the program's answer; the judge
		// approves the answers the script got right.
		judgeScript := &lmtest.Script{}
		for i := 0; i < 40; i += 2 {
			judgeScript.Rules = append(judgeScript.Rules, lmtest.Rule{
				Match:  fmt.Sprintf("[[ ## pred_answer ## ]]\n%d\n", 2*i),
				Fields: map[string]any{"correct": true, "feedback": "right"},
			})
		}
		judgeScript.Rules = append(judgeScript.Rules, lmtest.Rule{Fields: map[string]any{"correct": false, "feedback": "wrong"}})
		j, err := metric.Judge(signature.MustParse("question, gold_answer, pred_answer -> correct: bool, feedback"),
			metric.JudgeLM(startSim(t, lmtest.Config{Script: judgeScript})))
		if err != nil {
			t.Fatal(err)
		}
		jres, err := evaluate.Run(ctx, prog, devset, j, evaluate.Options{Concurrency: 8})
		if err != nil {
			t.Fatal(err)
		}
		if jres.Score != 50 || jres.Results[0].Feedback != "right" || jres.Results[1].Feedback != "wrong" {
			t.Errorf("score %v, feedback %q %q", jres.Score, jres.Results[0].Feedback, jres.Results[1].Feedback)
		}
		if jres.Usage.TotalTokens <= res.Usage.TotalTokens {
			t.Errorf("usage %d does not include the judge's (program alone: %d)", jres.Usage.TotalTokens, res.Usage.TotalTokens)
		}
	})
}

func ExampleRun() {
	srv, _ := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "capital of France", Fields: map[string]any{"answer": "Paris"}},
		{Match: "capital of Italy", Fields: map[string]any{"answer": "Milan"}},
	}}})
	defer srv.Close()
	model, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "UNSET_KEY"})

	devset := []example.Example{
		example.New(map[string]any{"question": "What is the capital of France?", "answer": "Paris"}).WithInputs("question"),
		example.New(map[string]any{"question": "What is the capital of Italy?", "answer": "Rome"}).WithInputs("question"),
	}
	ctx := module.WithLM(context.Background(), model)
	qa := module.NewPredict(signature.MustParse("question -> answer"))
	res, err := evaluate.Run(ctx, qa, devset, metric.ExactMatch("answer"), evaluate.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %.1f%% (%d scored, %d errors)\n", res.Metric, res.Score, res.Scored, res.Errors)
	for _, r := range res.Results {
		fmt.Println(r.Index, r.Prediction.String("answer"), r.Score)
	}
	// Output:
	// exact_match: 50.0% (2 scored, 0 errors)
	// 0 Paris 1
	// 1 Milan 0
}
