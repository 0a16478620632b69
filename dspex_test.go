package dspex_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dspex/dspex"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

func ask(ctx context.Context, t *testing.T, model lm.LM, country string) (string, error) {
	t.Helper()
	qa := module.NewPredict(signature.MustParse("country -> capital"))
	pred, err := qa.Forward(dspex.WithLM(ctx, model), dspex.Inputs{"country": country})
	if err != nil {
		return "", err
	}
	return pred.String("capital"), nil
}

var franceScript = &lmtest.Script{Rules: []lmtest.Rule{{Match: "France", Fields: map[string]any{"capital": "Paris"}}}}

func TestNewLMNeedsABaseURL(t *testing.T) {
	if _, err := dspex.NewLM("", "gpt-4o-mini"); !errors.Is(err, dspex.ErrNoBaseURL) {
		t.Fatalf("NewLM without a base URL: %v, want ErrNoBaseURL", err)
	}
}

// The default LM retries a failing server, and caches answers; the bare
// client, asked for explicitly, does neither.
func TestNewLMGivesTheFullStack(t *testing.T) {
	ctx := context.Background()
	fault, err := lmtest.ParseFault("500:first=2")
	if err != nil {
		t.Fatal(err)
	}
	sim := lmtest.NewServer(t, lmtest.WithScript(franceScript), lmtest.WithFaults(fault))
	fast := dspex.WithRetry(lm.RetryConfig{InitialBackoff: 1e6, MaxBackoff: 2e6})
	model, err := dspex.NewLM(sim.URL(), lmtest.DefaultModel, dspex.WithAPIKey("unused"), fast)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	if model.Stack() == nil {
		t.Fatal("the default LM has no execution stack")
	}
	got, err := ask(ctx, t, model, "France")
	if err != nil || got != "Paris" {
		t.Fatalf("default LM through two 500s: %q, %v; want Paris after retries", got, err)
	}
	before := sim.Stats().Requests
	if got, err := ask(ctx, t, model, "France"); err != nil || got != "Paris" {
		t.Fatalf("second call: %q, %v", got, err)
	}
	if after := sim.Stats().Requests; after != before {
		t.Errorf("the repeated call reached the server (%d → %d requests); want a cache hit", before, after)
	}

	sim2 := lmtest.NewServer(t, lmtest.WithScript(franceScript), lmtest.WithFaults(fault))
	bare, err := dspex.NewLM(sim2.URL(), lmtest.DefaultModel, dspex.WithAPIKey("unused"), dspex.Bare())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	if bare.Stack() != nil {
		t.Error("a Bare LM has an execution stack")
	}
	if _, err := ask(ctx, t, bare, "France"); !errors.Is(err, lm.ErrServer) {
		t.Errorf("bare LM against a 500: %v, want lm.ErrServer (no retries)", err)
	}
}

// The JSON adapter asks the front door's LM for what its model supports,
// as it asks the plain client.
func TestNewLMKeepsTheResponseFormat(t *testing.T) {
	sim := lmtest.NewServer(t)
	for model, want := range map[string]lm.ResponseFormatMode{
		"gpt-4o-mini": lm.ResponseFormatJSONSchema,
		"llama3":      lm.ResponseFormatNone,
	} {
		m, err := dspex.NewLM(sim.URL(), model, dspex.WithoutCache())
		if err != nil {
			t.Fatal(err)
		}
		if got := lm.ResponseFormatFor(m); got != want {
			t.Errorf("%s: response format %s, want %s", model, got, want)
		}
		m.Close()
	}
}

// A program runs against the simulated LM through the front door: one
// call gives the LM with retries, a cache, a pool and a breaker.
func Example() {
	sim, err := lmtest.Start(context.Background(), lmtest.Config{Script: franceScript})
	if err != nil {
		panic(err)
	}
	defer sim.Close()

	model, err := dspex.NewLM(sim.URL(), lmtest.DefaultModel, dspex.WithAPIKey("unused"))
	if err != nil {
		panic(err)
	}
	defer model.Close()
	ctx := dspex.WithLM(context.Background(), model)

	qa := module.NewPredict(signature.MustParse("country -> capital"))
	pred, err := qa.Forward(ctx, dspex.Inputs{"country": "France"})
	fmt.Println(pred.String("capital"), err)
	// Output: Paris <nil>
}
