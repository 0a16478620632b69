package codeact_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/plugins/codeact/codeacttest"
)

// hostilePlugins is the registry of the hostile suite: the interpreter in
// the sandbox (never without one) with the suite's small limits.
func hostilePlugins(t *testing.T) *bridge.Config {
	t.Helper()
	plugins := codeacttest.Plugins(t)
	spec := plugins.Plugins[bridge.InterpreterPlugin]
	spec.Sandbox, spec.UnsafeNoSandbox = true, false
	spec.SandboxLimits = codeacttest.HostileLimits()
	plugins.Plugins[bridge.InterpreterPlugin] = spec
	return plugins
}

// processAlive reports whether pid is a live (not zombie) process.
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// Issue 13's hostile code, each case through the real interpreter pool
// (the sandboxed plugin) in one session with Go tools: each gives its
// clear observation; an interpreter that hit a limit or died is discarded
// and the session goes on on a fresh one (the state lost), one that did
// not is kept; the next execution works; and the host is fine (a host
// process the code tried to kill lives, nothing was written on the host,
// no process the code started outlives its interpreter). It fails where no sandbox can be made
// (CI runs as root after make setup); DSPEX_SANDBOX_SKIP=1 skips it.
func TestHostileCode(t *testing.T) {
	python := codeacttest.Python(t)
	env := codeacttest.HostileSetup(t, python)
	pool := codeacttest.Pool(t, codeact.Config{Plugins: hostilePlugins(t), Timeout: codeacttest.HostileTimeout})
	s, err := pool.NewSession(t.Context(), shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range codeacttest.HostileCases(env) {
		t.Run(tc.Name, func(t *testing.T) {
			before := s.Interpreter()
			oldPid := before.Pid()
			obs, err := s.Execute(t.Context(), tc.Code)
			if err != nil {
				t.Fatalf("execute: %v (observation %+v)", err, obs)
			}
			t.Logf("%s in %s: killed_by %q error %+v exit %+v\nstdout: %.400s\nstderr: %.400s",
				tc.Name, obs.Duration, obs.KilledBy, obs.Error, obs.Exit, obs.Stdout, obs.Stderr)
			checkHostileObservation(t, tc, obs)
			if tc.Quick && obs.Duration > codeacttest.HostileTimeout/2 {
				t.Errorf("took %s: it must end well before the %s timeout", obs.Duration, codeacttest.HostileTimeout)
			}
			after := s.Interpreter()
			if tc.Discard {
				if !obs.StateLost || after == before {
					t.Errorf("the interpreter was kept (state lost %v): it must be discarded", obs.StateLost)
				}
				if tc.Discard && after != nil && after.Pid() == oldPid {
					t.Errorf("the session is still on process %d", oldPid)
				}
			} else if obs.StateLost || after != before {
				t.Errorf("the interpreter was replaced (state lost %v, broken %q): it must be kept", obs.StateLost, before.Broken())
			}
			next, nextValue := tc.Next, tc.NextValue
			if next == "" {
				next, nextValue = "6 * 7", "42"
			}
			obs, err = s.Execute(t.Context(), next)
			if err != nil || obs.Error != nil || obs.Value != nextValue || obs.StateLost {
				t.Fatalf("the next execution: %+v (error %+v), %v; want %s", obs, obsErr(obs), err, nextValue)
			}
			env.HostFine(t)
			// The discarded interpreter's process is gone (killed in the
			// background), and with it everything it started.
			if tc.Discard {
				deadline := time.Now().Add(10 * time.Second)
				for oldPid > 0 && processAlive(oldPid) && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if oldPid > 0 && processAlive(oldPid) {
					t.Errorf("the discarded interpreter's process %d still runs", oldPid)
				}
			}
			// (The host's process count moves with the other work on the
			// machine; the sandboxes' cgroups are this test's alone.)
			codeacttest.NoLeftovers(t)
		})
	}
}

func obsErr(obs *codeact.Observation) *codeact.ExecError {
	if obs == nil {
		return nil
	}
	return obs.Error
}

// checkHostileObservation checks obs against what tc must observe.
func checkHostileObservation(t *testing.T, tc codeacttest.HostileCase, obs *codeact.Observation) {
	t.Helper()
	switch {
	case tc.ErrType == "" && obs.Error != nil:
		t.Errorf("error %s, want none\n%s", obs.Error, obs.Error.Traceback)
	case tc.ErrType != "" && obs.Error == nil:
		t.Errorf("no error, want %s", tc.ErrType)
	case tc.ErrType != "" && (obs.Error.Type != tc.ErrType || !strings.Contains(obs.Error.Message, tc.ErrText)):
		t.Errorf("error %s, want %s containing %q", obs.Error, tc.ErrType, tc.ErrText)
	}
	if obs.KilledBy != tc.KilledBy {
		t.Errorf("killed by %q, want %q", obs.KilledBy, tc.KilledBy)
	}
	if tc.Stdout != "" && obs.Stdout != tc.Stdout {
		t.Errorf("stdout\n%s\nwant\n%s", obs.Stdout, tc.Stdout)
	}
	if tc.Check != nil {
		tc.Check(t, obs.Stdout)
	}
	// How the process ended, where it did: dspex exec's "exit" is made of it.
	switch {
	case tc.Exit > 128 && tc.KilledBy != codeact.KilledByTimeout:
		if obs.Exit == nil || obs.Exit.Signal != signalName(tc.Exit-128) {
			t.Errorf("process exit %+v, want killed by signal %d", obs.Exit, tc.Exit-128)
		}
	case tc.KilledBy == codeact.KilledByCrash && tc.Exit != 1:
		if obs.Exit == nil || obs.Exit.Code != tc.Exit {
			t.Errorf("process exit %+v, want exit code %d", obs.Exit, tc.Exit)
		}
	}
	if tc.Exit > 128 && obs.Exit != nil && tc.KilledBy != codeact.KilledByCrash && obs.Exit.Limit != tc.KilledBy {
		t.Errorf("process exit %+v, want the sandbox's %s limit named", obs.Exit, tc.KilledBy)
	}
}

func signalName(n int) string {
	switch n {
	case 9:
		return "SIGKILL"
	case 11:
		return "SIGSEGV"
	}
	return "signal " + strconv.Itoa(n)
}

// Code that holds the GIL in C stops the interpreter answering the host's
// health checks: with an execution timeout longer than the checks take to
// fail, the host kills it for that, and the observation says it crashed
// and that the host killed it (not a timeout); the session goes on.
func TestHostileHealthCheckFailure(t *testing.T) {
	python := codeacttest.Python(t)
	codeacttest.RequireSandbox(t, python)
	plugins := hostilePlugins(t)
	plugins.Supervisor.HealthInterval = config.Duration(200 * time.Millisecond)
	plugins.Supervisor.HealthTimeout = config.Duration(300 * time.Millisecond)
	plugins.Supervisor.HealthFailures = 2
	pool := codeacttest.Pool(t, codeact.Config{Plugins: plugins, Timeout: time.Minute, Warm: -1})
	s, err := pool.NewSession(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	obs, err := s.Execute(ctx, `import re; re.match(r"(a+)+$", "a" * 64 + "b")`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("in %s: %+v %+v", obs.Duration, obs.Error, obs.Exit)
	if obs.KilledBy != codeact.KilledByCrash || obs.Error == nil || obs.Error.Type != "InterpreterCrash" ||
		!strings.Contains(obs.Error.Message, "stopped answering the host's health checks") ||
		obs.Exit == nil || !obs.Exit.ByHost || !obs.StateLost {
		t.Errorf("observation %+v, error %+v, exit %+v", obs, obs.Error, obs.Exit)
	}
	if obs.Duration > 20*time.Second {
		t.Errorf("took %s", obs.Duration)
	}
	obs, err = s.Execute(ctx, "6 * 7")
	if err != nil || obs.Value != "42" {
		t.Fatalf("the next execution: %+v, %v", obs, err)
	}
}

// Code can change its process in ways a new session's namespace does not
// undo: replace builtins or a module's functions, leave a thread running
// to read what later sessions do. An interpreter whose session ran code
// therefore serves no other session (unless ReuseAcrossSessions); one
// whose session ran none does.
func TestHostileCodeDoesNotReachTheNextSession(t *testing.T) {
	python := codeacttest.Python(t)
	codeacttest.RequireSandbox(t, python)
	pool := codeacttest.Pool(t, codeact.Config{Plugins: hostilePlugins(t), Timeout: codeacttest.HostileTimeout})
	ctx := t.Context()
	a, err := pool.NewSession(ctx, shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	first := a.Interpreter()
	obs, err := a.Execute(ctx, `import builtins, json, threading, time
builtins.abs = lambda x: 0
json.loads = lambda s, **kw: "tampered"
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()`)
	if err != nil || obs.Error != nil {
		t.Fatalf("%+v, %v", obs, err)
	}
	// What the next session must not see, as this one sees it.
	obs, err = a.Execute(ctx, "(json.loads('[1]'), any(t.name.endswith('(sleep)') for t in threading.enumerate()))")
	if err != nil || obs.Value != "('tampered', True)" {
		t.Fatalf("%+v, %v", obs, err)
	}
	a.Close()
	if first.Broken() == "" {
		t.Error("the interpreter of a session that ran code was kept")
	}
	b, err := pool.NewSession(ctx, shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Interpreter() == first {
		t.Fatal("the next session got the same interpreter")
	}
	obs, err = b.Execute(ctx, "import builtins, json, threading\n(builtins.abs(-2), json.loads('[1]'), price('pear'), any(t.name.endswith('(sleep)') for t in threading.enumerate()))")
	if err != nil || obs.Error != nil || obs.Value != "(2, [1], 5, False)" {
		t.Fatalf("the next session: %+v (error %+v), %v", obs, obs.Error, err)
	}

	// A session that ran no code gives its interpreter back; with
	// ReuseAcrossSessions so does one that did.
	reuse := codeacttest.Pool(t, codeact.Config{Plugins: hostilePlugins(t), Warm: -1, Max: 1, ReuseAcrossSessions: true})
	for _, p := range []*codeact.Pool{pool, reuse} {
		c, err := p.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		it := c.Interpreter()
		if p == reuse {
			if obs, err := c.Execute(ctx, "x = 1"); err != nil || obs.Error != nil {
				t.Fatalf("%+v, %v", obs, err)
			}
		}
		c.Close()
		d, err := p.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.Interpreter() != it {
			t.Errorf("reuse %v: the interpreter was not handed on", p == reuse)
		}
		if obs, err := d.Execute(ctx, "'x' in dir()"); err != nil || obs.Value != "False" {
			t.Errorf("the next session's namespace: %+v, %v", obs, err)
		}
		d.Close()
	}
}
