package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The release set at build time is the one `dspex version` prints and the
// one a saved program records.
func TestVersionAgreesWithStateFile(t *testing.T) {
	out, _, code := runDspex(t, nil, "version")
	if code != 0 || out != "dspex "+e2eVersion+"\n" {
		t.Fatalf("version: exit %d, %q; want %q", code, out, "dspex "+e2eVersion)
	}

	_, prog := capitalsSim(t)
	state := filepath.Join(t.TempDir(), "state.json")
	out, stderr, code := runDspex(t, nil, "optimize", "--program", prog, "--train", filepath.Join(capitals, "train.jsonl"),
		"--optimizer", "labeled", "--out", state, "--no-cache", "--no-progress", "--db", filepath.Join(t.TempDir(), "traces.db"))
	if code != 0 {
		t.Fatalf("optimize: exit %d\n%s\n%s", code, out, stderr)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Metadata struct {
			DSPEx struct {
				Version string `json:"version"`
			} `json:"dspex"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	if got := saved.Metadata.DSPEx.Version; got != e2eVersion {
		t.Errorf("state file records version %q, dspex version prints %q", got, e2eVersion)
	}
}
