//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	rep := Check(context.Background(), Config{Python: testPython(t)})
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("%s", b)
	if !rep.Available {
		t.Fatalf("sandbox unavailable: %s", rep.Reason)
	}
	if rep.UID != UID || rep.Network {
		t.Fatalf("uid %d, network %v", rep.UID, rep.Network)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Without bubblewrap, Run refuses with ErrUnavailable and says what to do;
// Unsafe runs the command anyway, with no isolation.
func TestUnavailableAndUnsafe(t *testing.T) {
	python := testPython(t)
	if !filepath.IsAbs(python) {
		t.Skip("needs an absolute interpreter path")
	}
	t.Setenv("PATH", t.TempDir())
	_, err := Run(ctxT(t, 30*time.Second), Config{Python: python}, nil, "python", "-c", "print(1)")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "bubblewrap") {
		t.Fatalf("run without bwrap: %v, want ErrUnavailable naming bubblewrap", err)
	}
	rep := Check(ctxT(t, 30*time.Second), Config{Python: python})
	if rep.Available || !strings.Contains(rep.Reason, "bubblewrap") {
		t.Fatalf("check without bwrap: %+v", rep)
	}
	res, c, err := run(ctxT(t, 30*time.Second), Config{Python: python, Unsafe: true}, nil,
		"python", "-c", "import os; print(os.getuid() == 65534, sorted(os.environ))")
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("unsafe run: %+v, %v", res, err)
	}
	if !c.Protections().Unsafe {
		t.Errorf("protections %+v, want Unsafe", c.Protections())
	}
	// Even unsandboxed, the environment is the configured one.
	if got := strings.TrimSpace(string(res.Stdout)); !strings.HasSuffix(got, "['HOME', 'LANG', 'PATH', 'TMPDIR']") {
		t.Errorf("unsafe run printed %q", got)
	}
}

// A long-running command: pipes, Kill, Wait, Close, and no cgroup left.
func TestCommandLongRunning(t *testing.T) {
	requireSandbox(t)
	cfg := Config{Python: testPython(t), Timeout: -1}
	c, err := Command(ctxT(t, time.Minute), cfg, "python", "-u", "-c",
		"import sys\nfor line in sys.stdin: print(line.strip().upper(), flush=True)")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	for _, w := range []string{"one", "two"} {
		if _, err := in.Write([]byte(w + "\n")); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil || line != strings.ToUpper(w)+"\n" {
			t.Fatalf("%q, %v", line, err)
		}
	}
	c.Kill()
	if err := c.Wait(); err == nil {
		t.Error("wait after kill: nil error")
	}
	if c.ExitCode() != -1 || c.KilledBy() != "signal:9" {
		t.Errorf("exit %d, killed by %q, want -1 and signal:9", c.ExitCode(), c.KilledBy())
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if left := sandboxCgroupsLeft(); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// Cancelling the context kills the sandbox.
func TestContextCancel(t *testing.T) {
	requireSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	res, err := Run(ctx, Config{Python: testPython(t)}, nil, "python", "-c", "import time; time.sleep(60)")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want context.Canceled", err)
	}
	if res.Duration > 10*time.Second || res.KilledBy != "signal:9" {
		t.Fatalf("%+v", res)
	}
}
