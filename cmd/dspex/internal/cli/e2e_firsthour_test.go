package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/core/trace"
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
	data := writeFile(t, "in.jsonl", "{\"q\": \"1\"}\n{\"q\": \"1\"}\n{\"q\": \"1\"}\n")
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

// repoRoot is the repository's root, four levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// dspex optimize --optimizer knn saves a state file that dspex eval
// --state loads: flat, as DSPy saves the Predict KNNFewShot compiles.
func TestOptimizeKNNStateLoads(t *testing.T) {
	url, _ := capitalsSim(t)
	prog := writeFile(t, "knn.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"embeddings: {model: sim-embed, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"program: {module: predict, signature: \"question -> answer\"}\n")
	train := filepath.Join(capitals, "train.jsonl")
	dev := filepath.Join(capitals, "dev.jsonl")
	db := filepath.Join(t.TempDir(), "traces.db")
	state := filepath.Join(t.TempDir(), "knn.json")
	out, stderr, code := runDspex(t, nil, "optimize", "--program", prog, "--train", train, "--optimizer", "knn",
		"--out", state, "--db", db, "--no-cache", "--no-progress")
	if code != 0 || !strings.Contains(out, "saved "+state) {
		t.Fatalf("optimize knn: exit %d\n%s\n%s", code, out, stderr)
	}
	raw, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	if _, nested := top["self"]; nested || top["signature"] == nil {
		t.Errorf("knn state is not flat (DSPy's Predict.load cannot read it):\n%.400s", raw)
	}
	out, stderr, code = runDspex(t, nil, "eval", "--program", prog, "--data", dev, "--state", state, "--db", db, "--no-cache")
	if code != 0 || !strings.Contains(out, "score: ") {
		t.Errorf("eval --state %s: exit %d\n%s\n%s", state, code, out, stderr)
	}
}

// Mistakes that need no LM to find fail before the first LM call: knn
// without an embeddings: section, an --out that cannot be written.
func TestOptimizeChecksBeforeLMCalls(t *testing.T) {
	_, prog := capitalsSim(t)
	train := filepath.Join(capitals, "train.jsonl")
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"knn without embeddings", []string{"--optimizer", "knn", "--out", filepath.Join(dir, "s.json")}, 2, "--optimizer knn needs an embeddings: section in the program file " + prog},
		{"out in a missing directory", []string{"--optimizer", "bootstrap", "--out", filepath.Join(dir, "nowhere", "s.json")}, 1, "--out " + filepath.Join(dir, "nowhere", "s.json") + ": its directory"},
		{"out is a directory", []string{"--optimizer", "bootstrap", "--out", dir}, 2, "--out " + dir + " is a directory"},
		{"copro breadth 1", []string{"--optimizer", "copro", "--breadth", "1", "--out", filepath.Join(dir, "s.json")}, 2, "--breadth 1: copro needs at least 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "traces.db")
			args := append([]string{"optimize", "--program", prog, "--train", train, "--db", db, "--no-cache"}, c.args...)
			_, stderr, code := runDspex(t, nil, args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d (want %d), stderr:\n%s\nwant %q", code, c.code, stderr, c.want)
			}
			if strings.Contains(stderr, "LM calls") || strings.Contains(stderr, "optimize run") {
				t.Errorf("the command called the LM before failing:\n%s", stderr)
			}
		})
	}
}

// An optimization that fails after paid work says how to keep that work:
// --resume RUN.
func TestOptimizeInterruptedNamesResume(t *testing.T) {
	_, prog := capitalsSim(t, "--latency", "5ms")
	train := filepath.Join(capitals, "train.jsonl")
	db := filepath.Join(t.TempDir(), "traces.db")
	cmd := exec.Command(dspexBin, "optimize", "--program", prog, "--train", train, "--optimizer", "random-search",
		"--candidates", "5", "--out", filepath.Join(t.TempDir(), "s.json"), "--db", db, "--no-cache", "--no-progress", "--concurrency", "2")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runID := ""
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && runID == "" {
		time.Sleep(20 * time.Millisecond)
		r, err := trace.OpenReader(context.Background(), db)
		if err != nil {
			continue
		}
		if runs, err := r.Runs(context.Background(), trace.ListOptions{}); err == nil && len(runs) == 1 {
			if trials, _ := r.Trials(context.Background(), runs[0].ID); countEvaluated(trials) >= 1 {
				runID = runs[0].ID
			}
		}
		r.Close()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if runID == "" {
		t.Fatalf("no candidate finished in time; stderr:\n%s", stderr.String())
	}
	if err == nil {
		t.Fatalf("the optimization finished before SIGTERM; the test needs it mid-run")
	}
	if want := "rerun the same command with --resume " + runID; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr does not say how to resume (%q):\n%s", want, stderr.String())
	}
}

// make demo's script, read as a newcomer reads it: the dev-set result is
// the headline, every candidate of "9 candidates" is a line saying what it
// is, and no progress bar stops short of its total unexplained.
func TestDemoScript(t *testing.T) {
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "demo.sh"), dspexBin)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "XDG_STATE_HOME="+t.TempDir())
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"score the program on the dev set",
		"random search: the program as given, then 9 candidates, each scored on the training set (66 examples):\n  3 baselines: no demos;",
		"  6 (--candidates): 1 to 4 demos bootstrapped from a shuffled training set",
		"candidate 1/10: the program as given (0 demos): score ",
		"candidate 2/10: baseline without demos",
		"candidate 5/10: demos bootstrapped from the training set shuffled with seed 0",
		"candidate 10/10: ",
		"score on the training set (exact_match on answer, 66 examples)",
		"which flatters \"after\"",
		"answers came from the simulated LM",
		"== result on the dev set (held out, the honest figure): ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// Canceled calls, when there are any, are explained.
	if strings.Contains(out, " canceled)") && !strings.Contains(out, "canceled calls are not failures") {
		t.Error("demo output counts canceled calls without saying what they are")
	}
	for _, bar := range []string{"bootstrap [", "eval [", "random search ["} {
		if strings.Contains(out, bar) {
			t.Errorf("demo output shows %q progress lines, which stop short or repeat without saying why", bar)
		}
	}
	var before, after float64
	if i := strings.Index(out, "the honest figure): "); i >= 0 {
		if _, err := fmt.Sscanf(out[i:], "the honest figure): %f before, %f after", &before, &after); err != nil || after <= before {
			t.Errorf("dev-set result: %.2f before, %.2f after (%v); want an improvement", before, after, err)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}
