package cli_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/core/trace"
)

func writeInputs(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"q\": \"question %d\"}\n", i)
	}
	return writeFile(t, "inputs.jsonl", b.String())
}

// dspex run over 100 inputs as a real process: while it runs, a second
// process (dspex traces list) reads the database; afterwards the database
// holds one run, 100 module spans and 100 LM spans with token counts, and
// dspex traces show prints them.
func TestRunWritesTraces(t *testing.T) {
	url := startMockLM(t, "--latency", "20ms")
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"q -> a\"}\n")
	db := filepath.Join(t.TempDir(), "traces.db")
	inputs := writeInputs(t, 100)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dspexBin, "run", "--program", prog, "--inputs", inputs, "--db", db,
		"--no-cache", "--concurrency", "2", "--no-progress")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read from another process while the run writes.
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		out, _, code := runDspex(t, nil, "traces", "list", "--db", db, "--json")
		if code == 0 {
			if m := regexp.MustCompile(`"spans":\s*(\d+)`).FindStringSubmatch(out); m != nil {
				n, _ := strconv.Atoi(m[1])
				seen[n] = true
			}
		}
		if cmd.ProcessState != nil || len(seen) >= 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dspex run: %v", err)
	}
	if len(seen) < 2 {
		t.Errorf("a concurrent reader saw span counts %v: it did not see the database grow while written", seen)
	}

	r, err := trace.OpenReader(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runs, err := r.Runs(context.Background(), trace.ListOptions{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %d, %v", len(runs), err)
	}
	spans, err := r.Spans(context.Background(), runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	module := map[string]bool{}
	for _, s := range spans {
		kinds[s.Kind]++
		if s.Kind == "module" {
			module[s.ID] = true
		}
	}
	if kinds["module"] != 100 || kinds["lm"] != 100 {
		t.Fatalf("span kinds = %v", kinds)
	}
	for _, s := range spans {
		if s.Kind == "lm" && !module[s.ParentID] {
			t.Errorf("LM span %s is not under a module span", s.ID)
		}
	}
	calls, err := r.LMCalls(context.Background(), trace.LMCallQuery{RunID: runs[0].ID, Limit: 1000})
	if err != nil || len(calls) != 100 {
		t.Fatalf("lm calls = %d, %v", len(calls), err)
	}
	for _, c := range calls {
		if c.PromptTokens == 0 || c.CompletionTokens == 0 {
			t.Fatalf("LM call without token counts: %+v", c)
		}
	}

	out, _, code := runDspex(t, nil, "traces", "show", runs[0].ID[:6], "--db", db)
	if code != 0 || strings.Count(out, "Predict") < 100 || !strings.Contains(out, "dspex-sim") {
		t.Errorf("traces show (exit %d):\n%.2000s", code, out)
	}
	out, _, code = runDspex(t, nil, "history", "-n", "2", "--db", db)
	if code != 0 || !strings.Contains(out, "System message:") || !strings.Contains(out, "Response:") || !strings.Contains(out, "[[ ## a ## ]]") {
		t.Errorf("history (exit %d):\n%.2000s", code, out)
	}
}

// A dspex run killed with SIGKILL leaves a database that opens and holds
// what was committed before the kill.
func TestTracesSurviveSIGKILL(t *testing.T) {
	url := startMockLM(t, "--latency", "30ms")
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"q -> a\"}\n")
	db := filepath.Join(t.TempDir(), "traces.db")
	cmd := exec.Command(dspexBin, "run", "--program", prog, "--inputs", writeInputs(t, 500), "--db", db, "--no-cache", "--concurrency", "1", "--no-progress")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	committed := 0
	for time.Now().Before(deadline) && committed < 20 {
		if r, err := trace.OpenReader(context.Background(), db); err == nil {
			if calls, err := r.LMCalls(context.Background(), trace.LMCallQuery{Limit: 1000}); err == nil {
				committed = len(calls)
			}
			r.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if committed < 20 {
		t.Fatalf("only %d LM calls committed before the kill", committed)
	}
	r, err := trace.OpenReader(context.Background(), db)
	if err != nil {
		t.Fatalf("database after SIGKILL: %v", err)
	}
	defer r.Close()
	if err := r.Check(context.Background()); err != nil {
		t.Fatalf("integrity after SIGKILL: %v", err)
	}
	calls, err := r.LMCalls(context.Background(), trace.LMCallQuery{Limit: 1000})
	if err != nil || len(calls) < committed {
		t.Fatalf("after the kill %d LM calls readable, %d were committed before it: %v", len(calls), committed, err)
	}
	out, _, code := runDspex(t, nil, "traces", "list", "--db", db)
	if code != 0 || !strings.Contains(out, trace.StateDied) {
		t.Errorf("traces list after SIGKILL (want the run shown as %q) (exit %d): %s", trace.StateDied, code, out)
	}
}
