package mipro

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// The proposer's prompts are DSPy's: testdata/prompts.json holds DSPy
// 3.4.1's ChatAdapter messages for each signature (testdata/gen_prompts.py).
func TestPromptsMatchDSPy(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "prompts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]struct {
		Inputs   map[string]any `json:"inputs"`
		Messages []lm.Message   `json:"messages"`
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	sigs := map[string]*signature.Signature{
		"DatasetDescriptor":                      datasetDescriptor,
		"DatasetDescriptorWithPriorObservations": datasetDescriptorPrior,
		"ObservationSummarizer":                  observationSummarizer,
		"DescribeProgram":                        describeProgram,
		"DescribeModule":                         describeModule,
		"GenerateSingleModuleInstruction/summary=True/tip=True":   generateInstruction(true, true),
		"GenerateSingleModuleInstruction/summary=True/tip=False":  generateInstruction(true, false),
		"GenerateSingleModuleInstruction/summary=False/tip=True":  generateInstruction(false, true),
		"GenerateSingleModuleInstruction/summary=False/tip=False": generateInstruction(false, false),
	}
	if len(golden) != len(sigs) {
		t.Errorf("%d golden prompts, %d signatures", len(golden), len(sigs))
	}
	for name, sig := range sigs {
		t.Run(name, func(t *testing.T) {
			g, ok := golden[name]
			if !ok {
				t.Fatal("no golden prompt")
			}
			got, err := (&adapter.ChatAdapter{}).Format(sig, nil, g.Inputs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(g.Messages, got); diff != "" {
				t.Errorf("prompt differs from DSPy's (-DSPy +DSPEx):\n%s", diff)
			}
		})
	}
}
