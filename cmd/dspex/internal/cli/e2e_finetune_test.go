package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/bridge/bridgetest"
	"github.com/dspex/dspex/core/trace"
)

// finetunePython returns the repository's virtualenv interpreter when it
// can run the fine-tuning plugin (dspex_plugins and openai; make setup),
// or skips the test.
func finetunePython(t *testing.T) string {
	t.Helper()
	python, _ := bridgetest.Python(t, "import dspex_plugins.finetune, openai", "make setup installs the finetune extra; needed to test dspex optimize --optimizer finetune")
	return python
}

// simJobs lists the simulator's fine-tuning jobs through its OpenAI API.
func simJobs(t *testing.T, url string) []struct {
	ID, Status string
} {
	t.Helper()
	resp, err := http.Get(url + "/fine_tuning/jobs?limit=100")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	out := make([]struct{ ID, Status string }, len(page.Data))
	for i, j := range page.Data {
		out[i].ID, out[i].Status = j.ID, j.Status
	}
	return out
}

var jobLineRE = regexp.MustCompile(`(?m)^fine-tuning job (\S+) \(lm:dspex-sim, \d+ examples, openai, base dspex-sim\): succeeded: model (ft:dspex-sim:dspex:\S+)$`)

// BootstrapFinetune from the command line on the bundled task: the job's
// lines, a state that records the tuned model, and that state scoring
// higher than the program as given under dspex eval --state.
func TestOptimizeFinetune(t *testing.T) {
	python := finetunePython(t)
	url, prog := capitalsSim(t, "--finetune-step", "100ms")
	dev := filepath.Join(capitals, "dev.jsonl")
	db := filepath.Join(t.TempDir(), "traces.db")
	state := filepath.Join(t.TempDir(), "tuned.json")
	out, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=" + python}, "optimize", "--program", prog,
		"--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "finetune", "--backend", "openai",
		"--backend-option", "poll_interval=0.1", "--hyperparameter", "n_epochs=2", "--out", state, "--db", db, "--no-cache")
	if code != 0 || !strings.Contains(out, "saved "+state) {
		t.Fatalf("optimize: exit %d\n%s\n%s", code, out, stderr)
	}
	m := jobLineRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no line for the succeeded job:\n%s", stderr)
	}
	if !strings.Contains(out, "model") || !strings.Contains(out, m[2]) {
		t.Errorf("the before/after table does not show the model %s:\n%s", m[2], out)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"model": "`+m[2]+`"`)) {
		t.Errorf("the state does not record the model %s:\n%s", m[2], b)
	}
	if jobs := simJobs(t, url); len(jobs) != 1 || jobs[0].ID != m[1] {
		t.Errorf("the simulator's jobs %v, want the one job %s", jobs, m[1])
	}
	score := func(args ...string) float64 {
		t.Helper()
		out, stderr, code := runDspex(t, nil, append([]string{"eval", "--program", prog, "--data", dev, "--db", db, "--no-cache", "--json"}, args...)...)
		var res struct {
			Score float64 `json:"score"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
			t.Fatalf("eval %v: exit %d: %.500s\n%s", args, code, out, stderr)
		}
		return res.Score
	}
	// dspex run --state calls the tuned model: the run's one LM call, in
	// its own trace database, went to it.
	runDB := filepath.Join(t.TempDir(), "run.db")
	if out, stderr, code := runDspex(t, nil, "run", "--program", prog, "--state", state, "--db", runDB, "--no-cache",
		"--input", `{"question": "What is the capital of France?"}`); code != 0 {
		t.Fatalf("run --state: exit %d\n%s\n%s", code, out, stderr)
	}
	r, err := trace.OpenReader(context.Background(), runDB)
	if err != nil {
		t.Fatal(err)
	}
	calls, err := r.LMCalls(context.Background(), trace.LMCallQuery{})
	r.Close()
	if err != nil || len(calls) != 1 || calls[0].Model != m[2] {
		t.Errorf("dspex run --state: LM calls %+v (%v), want one to %s", calls, err, m[2])
	}
	base, tuned := score(), score("--state", state)
	if tuned <= base {
		t.Errorf("the tuned program scores %.2f on dev, not above the program as given (%.2f)", tuned, base)
	}
	t.Logf("dev: as given %.2f, tuned %.2f", base, tuned)
}

// A backend whose packages are missing is refused with the extra to
// install, before any LM call, and no job reaches the provider.
func TestOptimizeFinetuneLocalMissing(t *testing.T) {
	python := finetunePython(t)
	if exec.Command(python, "-c", "import transformers, torch").Run() == nil {
		t.Skip("this Python has transformers and torch")
	}
	url, prog := capitalsSim(t)
	_, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=" + python}, "optimize", "--program", prog,
		"--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "finetune", "--backend", "local",
		"--base-model", t.TempDir(), "--backend-option", "output_dir="+t.TempDir(),
		"--out", filepath.Join(t.TempDir(), "s.json"), "--no-traces", "--no-cache")
	if code != 1 || !strings.Contains(stderr, "cannot use backend local") || !strings.Contains(stderr, "pip install 'dspex_plugins[finetune-local]'") {
		t.Fatalf("exit %d, want 1 naming the finetune-local extra:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "LM calls") {
		t.Errorf("LM calls were made before the backend was found missing:\n%s", stderr)
	}
	if jobs := simJobs(t, url); len(jobs) != 0 {
		t.Errorf("the simulator's jobs %v, want none", jobs)
	}
}

// dspex is killed (SIGKILL) while its job runs; dspex optimize --resume
// RUN follows the same job to its end, and the provider never sees a
// second job.
func TestOptimizeFinetuneKilledThenResumed(t *testing.T) {
	python := finetunePython(t)
	url, prog := capitalsSim(t, "--finetune-step", "700ms")
	db := filepath.Join(t.TempDir(), "traces.db")
	state := filepath.Join(t.TempDir(), "tuned.json")
	args := []string{"optimize", "--program", prog, "--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "finetune",
		"--backend-option", "poll_interval=0.1", "--out", state, "--db", db, "--no-cache"}
	env := append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "XDG_STATE_HOME="+t.TempDir(), "DSPEX_DB=", "DSPEX_PYTHON="+python)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dspexBin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var runID string
	var seen strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		seen.WriteString(line + "\n")
		if m := runIDRE.FindStringSubmatch(line); m != nil {
			runID = m[1]
		}
		if strings.HasPrefix(line, "fine-tuning job ") && strings.Contains(line, ": running") {
			break
		}
	}
	// Once the trace database holds the job's id (the store commits in
	// batches), kill dspex and its plugin (its process group), as a crash
	// would.
	if runID != "" {
		deadline := time.Now().Add(10 * time.Second)
		for !storedJob(t, db, runID) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
	if runID == "" {
		t.Fatalf("no run id, or no running job, before the kill:\n%s", seen.String())
	}
	jobs := simJobs(t, url)
	if len(jobs) != 1 || jobs[0].Status == "succeeded" {
		t.Fatalf("the simulator's jobs at the kill: %v (want one, still running)", jobs)
	}
	out, errOut, code := runDspex(t, []string{"DSPEX_PYTHON=" + python}, append(args, "--resume", runID)...)
	if code != 0 || !strings.Contains(out, "saved "+state) {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "followed the jobs the interrupted run started (no bootstrap)") {
		t.Errorf("the resumed run did not follow the stored job without bootstrapping:\n%s", errOut)
	}
	m := jobLineRE.FindStringSubmatch(errOut)
	if m == nil || m[1] != jobs[0].ID {
		t.Errorf("the resumed run's job line %v, want job %s:\n%s", m, jobs[0].ID, errOut)
	}
	if after := simJobs(t, url); len(after) != 1 || after[0].Status != "succeeded" {
		t.Errorf("the simulator's jobs after the resume: %v, want the one job, succeeded", after)
	}
}

// What the fine-tuning backend needs is checked before the first LM call:
// a provider that cannot be reached, or an option the backend does not
// know, fails at once, having spent nothing.
func TestOptimizeFinetuneChecksFirst(t *testing.T) {
	python := finetunePython(t)
	_, prog := capitalsSim(t)
	for name, opts := range map[string][]string{
		"unreachable":    {"--backend-option", "base_url=http://127.0.0.1:1/v1", "--backend-option", "max_retries=0"},
		"unknown option": {"--backend-option", "epochs=3"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"optimize", "--program", prog, "--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "finetune",
				"--out", filepath.Join(t.TempDir(), "s.json"), "--no-traces", "--no-cache"}, opts...)
			_, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=" + python}, args...)
			if code != 1 || !strings.Contains(stderr, "the fine-tuning plugin cannot use backend openai") {
				t.Fatalf("exit %d, want 1 before any LM call:\n%s", code, stderr)
			}
			if name == "unreachable" && !strings.Contains(stderr, "127.0.0.1:1") {
				t.Errorf("the error does not name the provider:\n%s", stderr)
			}
			if strings.Contains(stderr, "LM calls") {
				t.Errorf("LM calls were made:\n%s", stderr)
			}
		})
	}
}

// storedJob reports whether the trace database db holds a fine-tuning job
// record with a job id for run.
func storedJob(t *testing.T, db, run string) bool {
	t.Helper()
	r, err := trace.OpenReader(context.Background(), db)
	if err != nil {
		return false
	}
	defer r.Close()
	evs, err := r.Events(context.Background(), run, "finetune.job")
	if err != nil {
		return false
	}
	for _, ev := range evs {
		var rec struct {
			JobID string `json:"job_id"`
		}
		if json.Unmarshal(ev.Data, &rec) == nil && rec.JobID != "" {
			return true
		}
	}
	return false
}
