package lmtest_test

import (
	"context"
	"fmt"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// capitalOf is the program under test: one Predict that asks model for a
// country's capital.
func capitalOf(ctx context.Context, model lm.LM, country string) (string, error) {
	qa := module.NewPredict(signature.MustParse("country -> capital"))
	pred, err := qa.Forward(module.WithLM(ctx, model), module.Inputs{"country": country})
	if err != nil {
		return "", err
	}
	return pred.String("capital"), nil
}

// A Go program runs against the simulator through the ordinary
// OpenAI-compatible client; a script decides the answer. In a test, use
// lmtest.NewServer(t, lmtest.WithScript(script)) instead of Start and Close:
// the test's cleanup closes it (TestNewServer shows one).
func Example_program() {
	script := &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "France", Fields: map[string]any{"capital": "Paris"}},
	}}
	sim, err := lmtest.Start(context.Background(), lmtest.Config{Script: script})
	if err != nil {
		panic(err)
	}
	defer sim.Close()
	model, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: sim.URL(), APIKey: "unused"})
	if err != nil {
		panic(err)
	}

	got, err := capitalOf(context.Background(), model, "France")
	fmt.Println(got, err)
	fmt.Println(sim.Stats().Requests, "request")
	// Output:
	// Paris <nil>
	// 1 request
}
