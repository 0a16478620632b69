package cli_test

import (
	"context"
	"encoding/json"
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

// samplerPython returns the repository's virtualenv interpreter when it
// can run the sampler plugin (dspex_plugins and Optuna; make setup), or
// skips the test.
func samplerPython(t *testing.T) string {
	t.Helper()
	python, _ := bridgetest.Python(t, "import dspex_plugins.sampler, optuna", "make setup installs the sampler extra; needed to test dspex optimize --optimizer mipro")
	return python
}

var trialLineRE = regexp.MustCompile(`(?m)^trial (\d+)/10 \(minibatch of 35\): score \d+\.\d\d, best full score so far \d+\.\d\d; [\d,]+ LM calls$`)

// MIPROv2 light on the bundled task, against the simulator: a line per
// trial, a state that beats the program as given on held-out data when
// dspex eval --state loads it.
func TestOptimizeMIPROLight(t *testing.T) {
	python := samplerPython(t)
	_, prog := capitalsSim(t)
	dev := filepath.Join(capitals, "dev.jsonl")
	db := filepath.Join(t.TempDir(), "traces.db")
	env := []string{"DSPEX_PYTHON=" + python}

	state := filepath.Join(t.TempDir(), "mipro.json")
	out, stderr, code := runDspex(t, env, "optimize", "--program", prog, "--train", filepath.Join(capitals, "train.jsonl"),
		"--optimizer", "mipro", "--auto", "light", "--out", state, "--db", db, "--no-cache")
	if code != 0 || !strings.Contains(out, "saved "+state) {
		t.Fatalf("optimize: exit %d\n%s\n%s", code, out, stderr)
	}
	if n := len(trialLineRE.FindAllString(stderr, -1)); n != 10 {
		t.Errorf("%d trial lines, want one per sampled trial (10):\n%s", n, stderr)
	}
	for _, want := range []string{"mipro (MIPROv2, auto light, seed 9)", "trial 0 (the program as given, all 52 examples)",
		"full evaluation after trial 10/10", "dspex: mipro: 13 trials in the study (10 sampled)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
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
	base, optimized := score(), score("--state", state)
	if optimized <= base {
		t.Errorf("MIPROv2's program scores %.2f on dev, not above the program as given (%.2f)", optimized, base)
	}
}

// --sampler and --sampler-rng pick the plugin's sampler and its RNG rule
// through the study's options; the plugin's log, kept in the trace
// database, says which it built.
func TestOptimizeMIPROSamplerFlag(t *testing.T) {
	python := samplerPython(t)
	_, prog := capitalsSim(t)
	db := filepath.Join(t.TempDir(), "traces.db")
	state := filepath.Join(t.TempDir(), "mipro.json")
	out, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=" + python}, "optimize", "--program", prog,
		"--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "mipro", "--sampler", "random", "--sampler-rng", "continuous", "--trials-in-flight", "2",
		"--out", state, "--db", db, "--no-cache", "--no-progress")
	if code != 0 || !strings.Contains(out, "saved "+state) || !strings.Contains(stderr, "chosen by the sampler (random)") {
		t.Fatalf("optimize --sampler random: exit %d\n%s\n%s", code, out, stderr)
	}
	if samplers := studySamplers(t, db); len(samplers) != 1 || samplers[0] != "random rng=continuous" {
		t.Errorf("the run's study was created with samplers %v, want [random rng=continuous]", samplers)
	}
}

// A plugins: section in the program file (or --config) replaces the
// built-in sampler plugin: here it sets the plugin's default sampler.
func TestOptimizeMIPROPluginsSection(t *testing.T) {
	python := samplerPython(t)
	url, _ := capitalsSim(t)
	for _, where := range []string{"program file", "--config"} {
		t.Run(where, func(t *testing.T) {
			section := "plugins:\n  plugins:\n    sampler:\n      args: [\"-m\", \"dspex_plugins.sampler\"]\n" +
				"      env: {DSPEX_SAMPLER: random}\n      capabilities: [sampler]\n"
			lm := "lm: {model: dspex-sim, base_url: \"" + url + "\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"question -> answer\"}\n"
			prog, extra := writeFile(t, "p.yaml", lm+section), []string(nil)
			if where == "--config" {
				prog, extra = writeFile(t, "p.yaml", lm), []string{"--config", writeFile(t, "plugins.yaml", section)}
			}
			db := filepath.Join(t.TempDir(), "traces.db")
			args := append([]string{"optimize", "--program", prog, "--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "mipro",
				"--out", filepath.Join(t.TempDir(), "s.json"), "--db", db, "--no-cache", "--no-progress"}, extra...)
			out, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=" + python}, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
			}
			if samplers := studySamplers(t, db); len(samplers) != 1 || samplers[0] != "random rng=trial" {
				t.Errorf("the run's study was created with samplers %v, want [random]", samplers)
			}
		})
	}
}

// studySamplers reads, from the plugin's log in the trace database of a
// one-run database, the sampler each creation of MIPROv2's study built.
func studySamplers(t *testing.T, db string) []string {
	t.Helper()
	ctx := context.Background()
	r, err := trace.OpenReader(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runs, err := r.Runs(ctx, trace.ListOptions{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v, %v", runs, err)
	}
	events, err := r.Events(ctx, runs[0].ID, "plugin.log")
	if err != nil {
		t.Fatal(err)
	}
	var samplers []string
	for _, ev := range events {
		var log struct {
			Message string         `json:"message"`
			Fields  map[string]any `json:"fields"`
		}
		if json.Unmarshal(ev.Data, &log) == nil && log.Message == "study created" && log.Fields["study"] == "mipro-9" {
			s, _ := log.Fields["sampler"].(string)
			rng, _ := log.Fields["rng"].(string)
			samplers = append(samplers, s+" rng="+rng)
		}
	}
	return samplers
}

// Without a Python that runs the sampler plugin, mipro fails before any LM
// call, saying what to set and install.
func TestOptimizeMIPROWithoutOptuna(t *testing.T) {
	python := samplerPython(t)
	// The virtualenv's Python with an optuna that fails to import, and a
	// Python without the plugins at all.
	hide := t.TempDir()
	if err := os.MkdirAll(filepath.Join(hide, "optuna"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hide, "optuna", "__init__.py"), []byte("raise ImportError('No module named optuna (hidden by the test)')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noOptuna := filepath.Join(hide, "python")
	if err := os.WriteFile(noOptuna, []byte("#!/bin/sh\nPYTHONPATH='"+hide+"' exec '"+python+"' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pythons := map[string]string{"without optuna": noOptuna}
	if sys, err := exec.LookPath("python3"); err == nil && exec.Command(sys, "-c", "import dspex_plugins").Run() != nil {
		pythons["without dspex_plugins"] = sys
	}
	for name, py := range pythons {
		t.Run(name, func(t *testing.T) {
			_, prog := capitalsSim(t)
			state := filepath.Join(t.TempDir(), "mipro.json")
			_, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=" + py}, "optimize", "--program", prog,
				"--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "mipro", "--out", state, "--no-traces", "--no-cache")
			for _, want := range []string{"DSPEX_PYTHON", "pip install 'dspex_plugins[sampler]'"} {
				if code != 1 || !strings.Contains(stderr, want) {
					t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, stderr)
				}
			}
			if strings.Contains(stderr, "LM calls") {
				t.Errorf("LM calls were made before the error:\n%s", stderr)
			}
			if _, err := os.Stat(state); err == nil {
				t.Error("a state was saved")
			}
		})
	}
}

// A mipro optimization killed with SIGKILL continues with --resume RUN:
// the trials it logged are read back from the trace database and not
// evaluated again, and the run ends as the uninterrupted one would.
func TestOptimizeMIPROResumeAfterSIGKILL(t *testing.T) {
	python := samplerPython(t)
	_, prog := capitalsSim(t, "--latency", "10ms")
	db := filepath.Join(t.TempDir(), "traces.db")
	state := filepath.Join(t.TempDir(), "mipro.json")
	args := []string{"optimize", "--program", prog, "--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "mipro",
		"--out", state, "--db", db, "--no-cache", "--concurrency", "4"}
	env := []string{"DSPEX_PYTHON=" + python}

	cmd := exec.Command(dspexBin, args...)
	cmd.Env = append(append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "DSPEX_DB="), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var runID string
	logged := 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && logged < 4 {
		time.Sleep(20 * time.Millisecond)
		r, err := trace.OpenReader(ctx, db)
		if err != nil {
			continue
		}
		if runs, err := r.Runs(ctx, trace.ListOptions{}); err == nil && len(runs) == 1 {
			runID = runs[0].ID
			trials, _ := r.Trials(ctx, runID)
			logged = countMIPROTrials(trials)
		}
		r.Close()
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if logged < 4 || logged >= 13 {
		t.Fatalf("%d trials logged before the kill; the test needs a kill mid-search", logged)
	}

	out, stderr, code := runDspex(t, env, append(args, "--resume", runID)...)
	if code != 0 || !strings.Contains(out, "saved "+state) {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, stderr)
	}
	restored := strings.Count(stderr, "(restored from the run resumed)")
	if restored < logged {
		t.Errorf("%d lines restored from the run resumed, %d trials were logged before the kill:\n%s", restored, logged, stderr)
	}
	if !strings.Contains(stderr, "dspex: mipro: 13 trials in the study (10 sampled)") {
		t.Errorf("the resumed run did not end with 13 trials:\n%s", stderr)
	}
}

func countMIPROTrials(trials []trace.Trial) int {
	n := 0
	for _, tr := range trials {
		if tr.Optimizer == "MIPROv2" && tr.Kind == trace.TrialEvaluated && tr.Score != nil {
			n++
		}
	}
	return n
}

// Flags that cannot make a MIPROv2 run are refused before anything starts
// (exit 2), with what to do; no Python is needed to find out.
func TestOptimizeMIPROUsageErrors(t *testing.T) {
	_, prog := capitalsSim(t)
	train := filepath.Join(capitals, "train.jsonl")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"auto with counts", []string{"--auto", "light", "--num-trials", "5"}, "--auto light sets the candidates and trials"},
		{"trials alone", []string{"--num-trials", "5"}, "give both --num-candidates and --num-trials"},
		{"unknown auto", []string{"--auto", "extreme"}, `--auto "extreme": expected light, medium or heavy`},
		{"unknown sampler", []string{"--sampler", "grid"}, `--sampler "grid": expected one of tpe, random, nsgaii, bruteforce`},
		{"unknown sampler rng", []string{"--sampler-rng", "global"}, `--sampler-rng "global": expected trial or continuous`},
		{"unknown prompt model", []string{"--prompt-model", "big"}, `--prompt-model "big": no such endpoint under models:`},
		{"half zero-shot", []string{"--max-bootstrapped-demos", "0"}, "set both to 0 for instructions only"},
		{"minibatch over the valset", []string{"--num-candidates", "3", "--num-trials", "4", "--minibatch-size", "60"}, "minibatch size 60 exceeds the validation set (52 examples)"},
		{"no trials in flight", []string{"--trials-in-flight", "0"}, "--trials-in-flight 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"optimize", "--program", prog, "--train", train, "--optimizer", "mipro",
				"--out", filepath.Join(t.TempDir(), "s.json"), "--no-traces"}, tc.args...)
			_, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=/nonexistent/python"}, args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, tc.want, stderr)
			}
		})
	}
}

// --prompt-model names an endpoint of the program file's models: section:
// the proposals go to it, the task to lm:.
func TestOptimizeMIPROPromptModel(t *testing.T) {
	python := samplerPython(t)
	url, _ := capitalsSim(t)
	script := writeFile(t, "proposer.yaml", `rules:
  - match: proposed_instruction
    fields: {proposed_instruction: "Give only the answer, in as few words as possible, exactly as a quiz expects."}
`)
	proposer := startMockLM(t, "--script", script)
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"models:\n  - {name: proposer, model: dspex-proposer, base_url: \""+proposer+"\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"program: {module: predict, signature: \"question -> answer\"}\n")
	db := filepath.Join(t.TempDir(), "traces.db")
	state := filepath.Join(t.TempDir(), "mipro.json")
	out, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=" + python}, "optimize", "--program", prog,
		"--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "mipro", "--prompt-model", "proposer",
		"--out", state, "--db", db, "--no-cache", "--no-progress")
	if code != 0 {
		t.Fatalf("optimize --prompt-model proposer: exit %d\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(stderr, "kept the original instruction") {
		t.Errorf("proposals fell back to the original instruction:\n%s", stderr)
	}
	export, _, code := runDspex(t, nil, "traces", "export", runIDOf(t, stderr), "--db", db)
	if code != 0 || !strings.Contains(export, "dspex-proposer") || !strings.Contains(export, "in as few words as possible") {
		t.Errorf("the trace does not show calls to the proposer endpoint and its instruction (exit %d)", code)
	}
}

var runIDRE = regexp.MustCompile(`optimize run ([0-9a-f]+)`)

func runIDOf(t *testing.T, stderr string) string {
	t.Helper()
	m := runIDRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no run id in %q", stderr)
	}
	return m[1]
}

// --timeout bounds every example of the trials, as of the other
// optimizers' evaluations, and --max-errors -1 lets every evaluation run
// to the end: against a simulator slower than the timeout, each trial's
// examples time out (kept as evaluation rows) and score 0, and the run
// still finishes.
func TestOptimizeMIPROTimeoutAndUnlimitedErrors(t *testing.T) {
	python := samplerPython(t)
	_, prog := capitalsSim(t, "--latency", "300ms")
	db := filepath.Join(t.TempDir(), "traces.db")
	state := filepath.Join(t.TempDir(), "mipro.json")
	out, stderr, code := runDspex(t, []string{"DSPEX_PYTHON=" + python}, "optimize", "--program", prog,
		"--train", filepath.Join(capitals, "train.jsonl"), "--optimizer", "mipro", "--auto", "light",
		"--timeout", "30ms", "--max-errors", "-1", "--out", state, "--db", db, "--no-cache")
	if code != 0 || !strings.Contains(out, "saved "+state) {
		t.Fatalf("optimize: exit %d\n%s\n%s", code, out, stderr)
	}
	ctx := context.Background()
	r, err := trace.OpenReader(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runs, err := r.Runs(ctx, trace.ListOptions{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %v: %v", runs, err)
	}
	trials, err := r.Trials(ctx, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := countMIPROTrials(trials); n != 13 {
		t.Errorf("%d trials, want 13", n)
	}
	for _, tr := range trials {
		if tr.Score != nil && *tr.Score != 0 {
			t.Errorf("trial %d scored %.2f; every example should have timed out", tr.Trial, *tr.Score)
		}
	}
	results, err := r.EvalResults(ctx, runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	timedOut := 0
	for _, res := range results {
		if strings.Contains(res.Error, "mipro: timed out after 30ms") {
			timedOut++
		}
	}
	// The baseline and the full evaluations (52 examples each) and the
	// minibatches (35 each).
	if want := 3*52 + 10*35; timedOut < want {
		t.Errorf("%d examples of the trials timed out, want %d", timedOut, want)
	}
}
