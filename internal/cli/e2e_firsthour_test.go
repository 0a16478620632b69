package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// A response cached from an earlier server answers after the server
// changed; the summary says so, where the cache is and how to skip it,
// and --no-cache reaches the new server.
func TestCachedAnswerFromEarlierServer(t *testing.T) {
	before := startMockLM(t, "--script", writeFile(t, "before.yaml", "rules:\n  - match: capital of France\n    fields: {answer: Paris}\n"))
	after := startMockLM(t, "--script", writeFile(t, "after.yaml", "rules:\n  - match: capital of France\n    fields: {answer: Lyon}\n"))
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \"${TEST_LM_URL}\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"question -> answer\"}\n")
	cacheFile := filepath.Join(t.TempDir(), "cache.db")
	input := `{"question": "What is the capital of France?"}`
	answer := func(out string) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("stdout %q: %v", out, err)
		}
		s, _ := m["answer"].(string)
		return s
	}

	out, stderr, code := runDspex(t, []string{"TEST_LM_URL=" + before}, "run", "--program", prog, "--input", input, "--cache", cacheFile)
	if code != 0 || answer(out) != "Paris" {
		t.Fatalf("first server: exit %d, out %s, stderr %s", code, out, stderr)
	}
	if strings.Contains(stderr, "response cache") {
		t.Errorf("first run mentions cached answers:\n%s", stderr)
	}

	out, stderr, code = runDspex(t, []string{"TEST_LM_URL=" + after}, "run", "--program", prog, "--input", input, "--cache", cacheFile)
	if code != 0 || answer(out) != "Paris" {
		t.Fatalf("changed server, cached: exit %d, out %s, stderr %s", code, out, stderr)
	}
	for _, want := range []string{
		"1 answer came from the response cache at " + cacheFile + ", saved by earlier runs",
		"--no-cache skips the cache",
		"dspex cache clear --path " + cacheFile,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("changed server, cached: stderr lacks %q:\n%s", want, stderr)
		}
	}

	out, stderr, code = runDspex(t, []string{"TEST_LM_URL=" + after}, "run", "--program", prog, "--input", input, "--cache", cacheFile, "--no-cache")
	if code != 0 || answer(out) != "Lyon" {
		t.Fatalf("--no-cache: exit %d, out %s, stderr %s; want the new server's answer", code, out, stderr)
	}
	if strings.Contains(stderr, "response cache") {
		t.Errorf("--no-cache run mentions cached answers:\n%s", stderr)
	}
}

// Repeats within one run are answered from the run's own cache entries
// and are not reported as saved by earlier runs.
func TestCacheRepeatsWithinRun(t *testing.T) {
	url := startMockLM(t)
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"q -> a\"}\n")
	cacheFile := filepath.Join(t.TempDir(), "cache.db")
	data := writeFile(t, "in.jsonl", "{\"q\": 1}\n{\"q\": 1}\n{\"q\": 1}\n")
	_, stderr, code := runDspex(t, nil, "run", "--program", prog, "--inputs", data, "--cache", cacheFile, "--concurrency", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "2 repeated requests were answered from this run's own entries in the response cache at "+cacheFile) {
		t.Errorf("stderr does not report this run's repeats:\n%s", stderr)
	}
	if strings.Contains(stderr, "earlier runs") {
		t.Errorf("this run's repeats reported as saved by earlier runs:\n%s", stderr)
	}
}

// Every command that calls an LM takes --no-cache.
func TestNoCacheFlagEverywhere(t *testing.T) {
	for _, cmd := range []string{"run", "eval", "optimize", "serve"} {
		out, stderr, code := runDspex(t, nil, cmd, "--help")
		if code != 0 || !strings.Contains(out, "--no-cache") {
			t.Errorf("dspex %s --help: exit %d, no --no-cache:\n%s%s", cmd, code, out, stderr)
		}
	}
}

// The README's command-line lines: the simulated LM started with the
// example script answers the README's question sensibly, and the summary
// says a simulator answered. A question the script does not know gets a
// placeholder that says it is simulated.
func TestReadmeCommandLine(t *testing.T) {
	root := repoRoot(t)
	url := startMockLM(t, "--script", filepath.Join(root, "examples/qa/sim-script.yaml"))
	env := []string{"DSPEX_LM_BASE_URL=" + url}
	prog := filepath.Join(root, "examples/qa/program.yaml")
	out, stderr, code := runDspex(t, env, "run", "--program", prog, "--input", `{"question": "What is the capital of France?"}`)
	if code != 0 || !strings.Contains(out, `"answer": "Paris"`) {
		t.Fatalf("README question: exit %d, out %s, stderr %s", code, out, stderr)
	}
	if !strings.Contains(stderr, "answers came from the simulated LM") {
		t.Errorf("summary does not say the simulated LM answered:\n%s", stderr)
	}
	out, stderr, code = runDspex(t, env, "run", "--program", prog, "--inputs", filepath.Join(root, "examples/qa/questions.jsonl"))
	if code != 0 || strings.Count(out, "\n") != 8 || strings.Contains(strings.ToLower(out), "simulated") {
		t.Errorf("README questions: exit %d, want 8 scripted answers:\n%s%s", code, out, stderr)
	}
	out, _, code = runDspex(t, env, "run", "--program", prog, "--input", `{"question": "Who painted the Mona Lisa?"}`)
	if code != 0 || !strings.Contains(strings.ToLower(out), "simulated") {
		t.Errorf("unscripted question: exit %d, the placeholder does not say it is simulated: %s", code, out)
	}
}

// repoRoot is the repository's root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}
