package cli_test

import (
	"os"
	"strings"
	"testing"
)

// A damaged trace database stops run and serve from starting, saying how
// to go on; with --traces-optional they warn and go on without traces,
// leaving the file as it was.
func TestCorruptTraceDatabase(t *testing.T) {
	url := startMockLM(t)
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"q -> a\"}\n")
	const junk = "this is not a database, just text that is long enough to be read as a header.\n"
	corrupt := writeFile(t, "traces.db", strings.Repeat(junk, 100))

	_, stderr, code := runDspex(t, nil, "run", "--program", prog, "--input", `{"q": "1"}`, "--db", corrupt)
	if code != 1 || !strings.Contains(stderr, "file is not a database") || !strings.Contains(stderr, "--traces-optional") {
		t.Errorf("run with a corrupt trace database: exit %d, stderr %s", code, stderr)
	}
	out, stderr, code := runDspex(t, nil, "run", "--program", prog, "--input", `{"q": "1"}`, "--db", corrupt, "--traces-optional")
	if code != 0 || out == "" || !strings.Contains(stderr, "warning: trace: open database "+corrupt) || !strings.Contains(stderr, "going on without traces") {
		t.Errorf("run --traces-optional with a corrupt trace database: exit %d, stdout %q, stderr %s", code, out, stderr)
	}

	p, code, _, stderr := startServe(t, "--program", prog, "--db", corrupt)
	if p != nil || code != 1 || !strings.Contains(stderr, "file is not a database") || !strings.Contains(stderr, "--traces-optional") {
		t.Errorf("serve with a corrupt trace database: started %v, exit %d, stderr %s", p != nil, code, stderr)
	}
	p, code, _, stderr = startServe(t, "--program", prog, "--db", corrupt, "--traces-optional")
	if p == nil {
		t.Fatalf("serve --traces-optional with a corrupt trace database did not start: exit %d, stderr %s", code, stderr)
	}
	if code, stderr := p.stop(t); code != 0 || !strings.Contains(stderr, "going on without traces") {
		t.Errorf("serve --traces-optional: exit %d, stderr %s", code, stderr)
	}

	if b, _ := os.ReadFile(corrupt); string(b) != strings.Repeat(junk, 100) {
		t.Error("the damaged trace database was changed")
	}
}
