package lm

import (
	"encoding/json"
	"os"
	"testing"
)

// TestAutoResponseFormatMatchesDSPy compares what "auto" picks with what
// DSPy 3.4.1's JSONAdapter sends for the same model names
// (testdata/golden/adapter/gen_dspy_response_format.py wrote the golden).
func TestAutoResponseFormatMatchesDSPy(t *testing.T) {
	b, err := os.ReadFile("../../testdata/golden/adapter/response_format.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]ResponseFormatMode
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	// Where DSPEx knows more than DSPy's catalogue, on purpose: a fine-tune
	// takes its base model's structured outputs, which DSPy's catalogue,
	// keyed by exact name, cannot know.
	deviations := map[string]ResponseFormatMode{
		"ft:gpt-4o-mini-2024-07-18:org::abc": ResponseFormatJSONSchema,
	}
	if len(want) < 10 {
		t.Fatalf("golden has %d models", len(want))
	}
	for model, mode := range want {
		if d, ok := deviations[model]; ok {
			mode = d
		}
		if got := AutoResponseFormat(model); got != mode {
			t.Errorf("AutoResponseFormat(%q) = %s, want %s", model, got, mode)
		}
	}
}
