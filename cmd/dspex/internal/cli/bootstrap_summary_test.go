package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// The optimize summary says how many LM calls bootstrapping made beyond
// those a sequential run makes: none, on the bundled task.
func TestOptimizeReportsBootstrapExtraCalls(t *testing.T) {
	_, prog := capitalsSim(t)
	train := filepath.Join(capitals, "train.jsonl")
	state := filepath.Join(t.TempDir(), "state.json")
	out, stderr, code := runDspex(t, nil, "optimize", "--program", prog, "--train", train,
		"--optimizer", "bootstrap", "--out", state, "--no-traces", "--no-cache")
	if code != 0 {
		t.Fatalf("optimize: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "; 0 calls beyond those a sequential run makes") || !strings.Contains(stderr, "bootstrapping ran the teacher on ") {
		t.Errorf("no bootstrap summary line in stderr:\n%s", stderr)
	}
}
