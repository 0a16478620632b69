package cli_test

import (
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

const capitals = "../../../../examples/capitals"

func capitalsSim(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	url := startMockLM(t, append([]string{"--dataset", filepath.Join(capitals, "train.jsonl"), "--dataset", filepath.Join(capitals, "dev.jsonl")}, extra...)...)
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"question -> answer\"}\n")
	return url, prog
}

func TestEvalAndOptimize(t *testing.T) {
	_, prog := capitalsSim(t)
	dev := filepath.Join(capitals, "dev.jsonl")
	train := filepath.Join(capitals, "train.jsonl")
	db := filepath.Join(t.TempDir(), "traces.db")

	out, stderr, code := runDspex(t, nil, "eval", "--program", prog, "--data", dev, "--db", db, "--no-cache")
	if code != 0 || !strings.Contains(out, "score: ") {
		t.Fatalf("eval: exit %d\n%s\n%s", code, out, stderr)
	}
	var base float64
	parseScore(t, out, &base)

	state := filepath.Join(t.TempDir(), "state.json")
	out, stderr, code = runDspex(t, nil, "optimize", "--program", prog, "--train", train, "--val", dev,
		"--optimizer", "bootstrap", "--out", state, "--db", db, "--no-cache")
	if code != 0 || !strings.Contains(out, "before") || !strings.Contains(out, "saved "+state) {
		t.Fatalf("optimize: exit %d\n%s\n%s", code, out, stderr)
	}
	out, _, code = runDspex(t, nil, "eval", "--program", prog, "--data", dev, "--state", state, "--db", db, "--no-cache", "--json")
	var res struct {
		Score float64 `json:"score"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("eval --state --json: exit %d: %.500s", code, out)
	}
	if res.Score <= base {
		t.Errorf("optimized score %.2f not above the baseline %.2f", res.Score, base)
	}

	// Bad input: a data line without the gold field, an unknown metric.
	bad := writeFile(t, "bad.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"no answer\"}\n")
	_, stderr, code = runDspex(t, nil, "eval", "--program", prog, "--data", bad, "--db", db)
	if code != 1 || !strings.Contains(stderr, "bad.jsonl:2: missing gold field \"answer\"") {
		t.Errorf("bad data: exit %d: %s", code, stderr)
	}
	_, stderr, code = runDspex(t, nil, "eval", "--program", prog, "--data", dev, "--metric", "bleu", "--db", db)
	if code != 2 || !strings.Contains(stderr, "exact_match") {
		t.Errorf("unknown metric: exit %d: %s", code, stderr)
	}
}

func parseScore(t *testing.T, out string, v *float64) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "score: "); ok {
			var s float64
			if _, err := fmtSscan(strings.Fields(rest)[0], &s); err == nil {
				*v = s
				return
			}
		}
	}
	t.Fatalf("no score in %q", out)
}

// An optimization killed with SIGKILL continues with --resume RUN: the
// candidates it finished are restored, not evaluated again.
func TestOptimizeResumeAfterSIGKILL(t *testing.T) {
	_, prog := capitalsSim(t, "--latency", "2ms")
	train := filepath.Join(capitals, "train.jsonl")
	db := filepath.Join(t.TempDir(), "traces.db")
	state := filepath.Join(t.TempDir(), "state.json")
	args := []string{"optimize", "--program", prog, "--train", train, "--optimizer", "random-search", "--candidates", "5",
		"--out", state, "--db", db, "--no-cache", "--concurrency", "4", "--no-progress"}

	cmd := exec.Command(dspexBin, args...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var runID string
	finished := 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && finished < 3 {
		time.Sleep(20 * time.Millisecond)
		r, err := trace.OpenReader(context.Background(), db)
		if err != nil {
			continue
		}
		runs, err := r.Runs(context.Background(), trace.ListOptions{})
		if err == nil && len(runs) == 1 {
			runID = runs[0].ID
			trials, _ := r.Trials(context.Background(), runID)
			finished = countEvaluated(trials)
		}
		r.Close()
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if finished < 3 || finished >= 9 {
		t.Fatalf("%d candidates finished before the kill; the test needs a kill mid-run", finished)
	}
	if _, err := os.Stat(state); err == nil {
		t.Fatal("the killed run already wrote its output")
	}

	out, stderr, code := runDspex(t, nil, append(args, "--resume", runID[:8])...)
	if code != 0 || !strings.Contains(out, "saved") {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, stderr)
	}
	r, err := trace.OpenReader(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	trials, err := r.Trials(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	// Every candidate finished before the kill appears again only as resumed.
	evaluated := map[string]int{}
	resumed := 0
	proposals := 0
	for _, tr := range trials {
		if tr.Kind != trace.TrialEvaluated {
			continue
		}
		if tr.Score == nil {
			proposals++ // a candidate proposed before its evaluation
			continue
		}
		var c struct {
			ID      string `json:"id"`
			Resumed bool   `json:"resumed"`
		}
		json.Unmarshal(tr.Candidate, &c)
		if c.Resumed {
			resumed++
			continue
		}
		evaluated[c.ID]++
	}
	for id, n := range evaluated {
		if n != 1 {
			t.Errorf("candidate %s evaluated %d times", id, n)
		}
	}
	if resumed != finished {
		t.Errorf("%d candidates restored on resume, %d were finished before the kill", resumed, finished)
	}
	if proposals < len(evaluated) {
		t.Errorf("%d proposals recorded for %d evaluated candidates", proposals, len(evaluated))
	}
	if len(evaluated) != 9 { // baseline + 3 seeded baselines + 5 candidates
		t.Errorf("%d distinct candidates evaluated, want 9: %v", len(evaluated), evaluated)
	}

	// A resume id that does not exist, or belongs to another optimization.
	_, stderr, code = runDspex(t, nil, append(args, "--resume", "ffffffffff")...)
	if code != 1 || !strings.Contains(stderr, "--resume ffffffffff") {
		t.Errorf("unknown run: exit %d: %s", code, stderr)
	}
	other := append([]string(nil), args...)
	other[len(other)-1] = "--no-progress"
	other = append(other, "--seed", "7", "--resume", runID)
	_, stderr, code = runDspex(t, nil, other...)
	if code != 1 || !strings.Contains(stderr, "belongs to a different optimization") {
		t.Errorf("other optimization: exit %d: %s", code, stderr)
	}
}

func countEvaluated(trials []trace.Trial) int {
	n := 0
	for _, tr := range trials {
		if tr.Kind == trace.TrialEvaluated && tr.Score != nil {
			n++
		}
	}
	return n
}

func fmtSscan(s string, v *float64) (int, error) { return fmt.Sscan(s, v) }
