package main

import (
	"context"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm/lmtest"
)

// The example program answers from the simulator with the QA example's
// script, as the README says it does.
func TestHelloAgainstTheSimulator(t *testing.T) {
	script, err := lmtest.LoadScript("../qa/sim-script.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sim := lmtest.NewServer(t, lmtest.WithScript(script))
	t.Setenv("OPENAI_API_KEY", "")
	var out strings.Builder
	if err := run(context.Background(), &out, sim.URL(), lmtest.DefaultModel, "What is the capital of France?"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "answer: Paris\n") {
		t.Errorf("output %q lacks the answer Paris", out.String())
	}
	if err := run(context.Background(), &out, "", lmtest.DefaultModel, "q"); err == nil {
		t.Error("no base URL was accepted")
	}
}
