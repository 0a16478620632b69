package trace

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
)

const (
	helperEnv   = "DSPEX_TRACE_HELPER" // the helper's mode: "kill" or "slow"
	helperDBEnv = "DSPEX_TRACE_HELPER_DB"
	helperRun   = "DSPEX_TRACE_HELPER_RUN"
	// killBatch is the helper's batch size in "kill" mode: 16 calls of 4
	// events, so that a committed batch holds whole calls only.
	killBatch      = 64
	callsPerBatch  = killBatch / 4
	readyAfter     = 5 // committed batches before the helper says "ready"
	helperLifetime = 30 * time.Second
)

// TestHelperProcess is not a test: the process tests run the test binary
// with helperEnv set, and then this writes traces as a separate dspex
// process would.
//
//   - "kill": publish calls as fast as possible in batches of killBatch
//     events, print "ready" after readyAfter commits, and go on until
//     killed.
//   - "slow": publish a call every 2ms, committing every 10ms, print
//     "started" after the first commit, and stop when standard input
//     closes, printing "wrote N" with the calls published.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper for the process tests")
	}
	opts := Options{BatchSize: killBatch, FlushInterval: time.Hour}
	if mode == "slow" {
		opts = Options{FlushInterval: 10 * time.Millisecond}
	}
	s, err := Open(context.Background(), os.Getenv(helperDBEnv), opts)
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	bus := event.NewBus()
	if err := s.Attach(bus); err != nil {
		t.Fatalf("helper: %v", err)
	}
	e := newEmitter(bus, os.Getenv(helperRun), time.Now())
	stop := make(chan struct{})
	if mode == "slow" {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			close(stop)
		}()
	}
	deadline := time.After(helperLifetime)
	said := false
	for {
		select {
		case <-stop:
			bus.Close()
			if err := s.Close(); err != nil {
				t.Fatalf("helper: %v", err)
			}
			fmt.Printf("wrote %d\n", e.n)
			return
		case <-deadline:
			t.Fatal("helper: nobody stopped me")
		default:
		}
		e.call("")
		if !said && s.Stats().Batches >= map[string]int64{"kill": readyAfter, "slow": 1}[mode] {
			fmt.Println(map[string]string{"kill": "ready", "slow": "started"}[mode])
			said = true
		}
		if mode == "slow" {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// helper starts the helper process in mode writing run to path, and
// returns it with its standard input and a channel of its output lines.
func helper(t *testing.T, mode, path, run string) (*exec.Cmd, io.WriteCloser, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDBEnv+"="+path, helperRun+"="+run)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, stdin, lines
}

// await returns the first line starting with prefix.
func await(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("helper exited before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("helper did not print %q in 20s", prefix)
		}
	}
}

// TestSIGKILLLeavesCommittedBatches kills writers mid-run, twice on one
// file (the second recovering the first's log), and checks that the file
// opens, is sound, and holds whole batches only: every batch is 16 calls of
// 2 spans whose start and end are both in it, so a partly visible
// transaction would show as a span without its end, an LM call without its
// span, or a count that is not a multiple of the batch.
func TestSIGKILLLeavesCommittedBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := tempDB(t)
	for _, run := range []string{"killed1", "killed2"} {
		cmd, _, lines := helper(t, "kill", path, run)
		await(t, lines, "ready")
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // land anywhere in a batch
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("helper ended with %v; want killed", err)
		}
	}

	ctx := context.Background()
	r := openReader(t, path)
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"killed1", "killed2"} {
		info, err := r.Run(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		spans, err := r.Spans(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		calls, err := r.LMCalls(ctx, LMCallQuery{RunID: run, Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d spans, %d LM calls survived the kill", run, len(spans), len(calls))
		if len(spans) < readyAfter*callsPerBatch*2 {
			t.Errorf("%s: %d spans; the helper had committed at least %d", run, len(spans), readyAfter*callsPerBatch*2)
		}
		if len(spans)%(callsPerBatch*2) != 0 || len(calls) != len(spans)/2 || info.Spans != len(spans) {
			t.Errorf("%s: %d spans, %d LM calls: not whole batches of %d calls", run, len(spans), len(calls), callsPerBatch)
		}
		for _, s := range spans {
			if s.StartedAt.IsZero() || s.EndedAt.IsZero() {
				t.Fatalf("%s: span %+v is half written", run, s)
			}
		}
		for _, c := range calls {
			if !c.Ended() || len(c.Completions) != 1 || c.ParentID == "" {
				t.Fatalf("%s: LM call %+v is half written", run, c)
			}
		}
	}
	// The file is writable again.
	s, bus := openStore(t, path, Options{})
	newEmitter(bus, "after", time.Now()).call("")
	closeStore(t, s)
}

// TestReadWhileAnotherProcessWrites reads the file from this process while
// a helper process writes it, and sees the counts grow.
func TestReadWhileAnotherProcessWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := tempDB(t)
	cmd, stdin, lines := helper(t, "slow", path, "live")
	await(t, lines, "started")

	ctx := context.Background()
	r := openReader(t, path)
	var counts []int
	deadline := time.Now().Add(10 * time.Second)
	for len(counts) < 6 || counts[len(counts)-1] <= counts[0] {
		if time.Now().After(deadline) {
			t.Fatalf("counts did not grow in 10s while the helper wrote: %v", counts)
		}
		spans, err := r.Spans(ctx, "live")
		if err != nil {
			t.Fatal(err)
		}
		run, err := r.Run(ctx, "live")
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != "running" {
			t.Errorf("run status %q while writing", run.Status)
		}
		counts = append(counts, len(spans))
		time.Sleep(40 * time.Millisecond)
	}
	// A reader opened while the writer runs works too.
	r2 := openReader(t, path)
	if _, err := r2.LMCalls(ctx, LMCallQuery{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("span counts seen while writing: %v", counts)
	for i := 1; i < len(counts); i++ {
		if counts[i] < counts[i-1] {
			t.Fatalf("counts went down: %v", counts)
		}
	}
	if counts[0] == 0 || counts[len(counts)-1] <= counts[0] {
		t.Fatalf("counts did not grow while the helper wrote: %v", counts)
	}

	stdin.Close()
	n, err := strconv.Atoi(strings.TrimPrefix(await(t, lines, "wrote "), "wrote "))
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	spans, err := r.Spans(ctx, "live")
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 2*n {
		t.Errorf("after the helper closed: %d spans; it wrote %d calls", len(spans), n)
	}
}
