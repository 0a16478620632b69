package bridge

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/core/event"
)

func TestHandshakeAndLogs(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	p := startPlugin(t, "echo", fakeSpec("normal"), fastConfig(), rec)
	if st := p.State(); st != StateNotStarted {
		t.Errorf("state %s before the first call, want not started (lazy)", st)
	}
	pid := echo(t, p, "hi")
	if pid != p.Pid() {
		t.Errorf("echo pid %d, plugin pid %d", pid, p.Pid())
	}
	// The fake's hclog JSON lines arrive as plugin log events with their
	// level and fields.
	ev := rec.waitFor(t, event.PluginLog, func(ev event.Event) bool {
		return ev.Data.(*event.PluginLogEntry).Message == "fake plugin serving"
	})
	entry := ev.Data.(*event.PluginLogEntry)
	if entry.Plugin != "echo" || entry.Source != "plugin" || entry.Level != "info" || entry.Fields["mode"] != "normal" {
		t.Errorf("log entry %+v", entry)
	}
	rec.waitFor(t, event.PluginLog, func(ev event.Event) bool {
		e := ev.Data.(*event.PluginLogEntry)
		return e.Message == "echo called" && e.Level == "debug" && e.Fields["message"] == "hi"
	})
}

func TestEagerStart(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	cfg := fastConfig()
	cfg.Eager = true
	p := startPlugin(t, "echo", fakeSpec("normal"), cfg, rec)
	rec.waitFor(t, event.PluginStart, nil)
	if st := p.State(); st != StateRunning {
		t.Errorf("eager plugin %s without a call", st)
	}
}

// startFailure starts a plugin that cannot start, with restarts off, and
// returns the error and the pid that was tried.
func startFailure(t *testing.T, spec PluginSpec, cfg SupervisorConfig) (int, error) {
	t.Helper()
	rec := newRecorder(t)
	cfg.MaxRestarts = -1
	p := startPlugin(t, "bad", spec, cfg, rec)
	start := time.Now()
	err := p.Start(ctxTimeout(t, 30*time.Second))
	if !errors.Is(err, ErrGaveUp) {
		t.Fatalf("start: %v, want ErrGaveUp", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failed start took %s", d)
	}
	exit := rec.waitFor(t, event.PluginExit, nil).Data.(*event.PluginInfo)
	give := rec.waitFor(t, event.PluginGiveUp, nil).Data.(*event.PluginInfo)
	if give.Error != err.Error() {
		t.Errorf("give-up event error %q, Start's error %q", give.Error, err)
	}
	if _, err := p.Info(ctxTimeout(t, time.Second)); !errors.Is(err, ErrGaveUp) {
		t.Errorf("call after giving up: %v, want ErrGaveUp", err)
	}
	return exit.Pid, err
}

func TestGarbageBeforeHandshake(t *testing.T) {
	t.Parallel()
	pid, err := startFailure(t, fakeSpec("garbage"), fastConfig())
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "hello, I am not a handshake") {
		t.Errorf("error %q, want ErrHandshake quoting the garbage", err)
	}
	processGone(t, pid)
}

func TestNoHandshakeTimesOut(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.StartTimeout = config.Duration(700 * time.Millisecond)
	pid, err := startFailure(t, fakeSpec("silent"), cfg)
	if !errors.Is(err, ErrStartTimeout) || !strings.Contains(err.Error(), "waiting for the handshake") {
		t.Errorf("error %q, want ErrStartTimeout while waiting for the handshake", err)
	}
	processGone(t, pid)
}

func TestExitAtOnce(t *testing.T) {
	t.Parallel()
	pid, err := startFailure(t, fakeSpec("exit"), fastConfig())
	var pe *Error
	if !errors.Is(err, ErrPluginExited) || !errors.As(err, &pe) {
		t.Fatalf("error %q, want ErrPluginExited", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "exit code 3") || !strings.Contains(msg, "fake plugin: exiting at once") {
		t.Errorf("error %q should give the exit code and the stderr", msg)
	}
	processGone(t, pid)
}

func TestGiveUpAfterCrashLoop(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	cfg := fastConfig()
	cfg.MaxRestarts = 2
	p := startPlugin(t, "loop", fakeSpec("exit"), cfg, rec)
	err := p.WaitReady(ctxTimeout(t, 30*time.Second))
	var pe *Error
	if !errors.Is(err, ErrGaveUp) || !errors.Is(err, ErrPluginExited) || !errors.As(err, &pe) {
		t.Fatalf("wait: %v, want ErrGaveUp wrapping ErrPluginExited", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "after 2 restarts") || !strings.Contains(msg, "exit code 3") {
		t.Errorf("error %q should count the restarts and give the last exit", msg)
	}
	rec.waitFor(t, event.PluginGiveUp, nil)
	if n := len(rec.infos(event.PluginExit)); n != 3 {
		t.Errorf("%d exit events, want 3 (the first start and 2 restarts)", n)
	}
	restarts := rec.infos(event.PluginRestart)
	if len(restarts) != 2 || restarts[1].Backoff <= restarts[0].Backoff {
		t.Errorf("restart events %+v, want 2 with a growing backoff", restarts)
	}
	if st := p.Status(); st.State != StateGaveUp || st.Starts != 3 || !strings.Contains(st.LastError, "gave up") {
		t.Errorf("status %+v", st)
	}
}

// A plugin that crashes under load every few calls: the callers get clear
// errors, the supervisor restarts it until the restarts exceed the
// intensity, then gives up.
func TestCrashAfterCallsLoop(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.MaxRestarts = 2
	p := startPlugin(t, "loop", fakeSpec("crash-after", fakeCrashAfterEnv, "2"), cfg, newRecorder(t))
	var ok, exited int
	for range 20 {
		if err := p.WaitReady(ctxTimeout(t, 20*time.Second)); err != nil {
			if !errors.Is(err, ErrGaveUp) || !errors.Is(err, ErrPluginExited) {
				t.Fatalf("wait: %v, want ErrGaveUp after the crash loop", err)
			}
			break
		}
		_, err := p.Echo().Echo(ctxTimeout(t, 10*time.Second), &pluginv1.EchoRequest{Message: "x"})
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrPluginExited):
			exited++
			var pe *Error
			if !errors.As(err, &pe) || pe.Exit == nil || pe.Exit.Code != 2 {
				t.Errorf("crash: %v, want exit code 2", err)
			}
		default:
			t.Fatalf("echo: %v", err)
		}
	}
	if ok != 6 || exited != 3 || p.State() != StateGaveUp {
		t.Errorf("%d ok, %d exited, state %s; want 6, 3, gave up", ok, exited, p.State())
	}
}

func TestHealthTimeoutRestarts(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	p := startPlugin(t, "sick", fakeSpec("unhealthy"), fastConfig(), rec)
	pid := echo(t, p, "hi")
	fail := rec.waitFor(t, event.PluginHealth, nil).Data.(*event.PluginInfo)
	if fail.Failures != 1 || fail.Error == "" {
		t.Errorf("health event %+v", fail)
	}
	exit := rec.waitFor(t, event.PluginExit, nil).Data.(*event.PluginInfo)
	if exit.Pid != pid || exit.Signal != "SIGKILL" || !strings.Contains(exit.Reason, "unhealthy") {
		t.Errorf("exit event %+v, want the unhealthy plugin killed", exit)
	}
	processGone(t, pid)
	rec.waitFor(t, event.PluginRestart, nil)
	rec.waitFor(t, event.PluginStart, func(ev event.Event) bool { return ev.Data.(*event.PluginInfo).Generation == 2 })
}

func TestHungCallHonoursDeadline(t *testing.T) {
	t.Parallel()
	p := startPlugin(t, "hung", fakeSpec("hang"), fastConfig(), nil)
	if err := p.Start(ctxTimeout(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := p.Echo().Echo(ctx, &pluginv1.EchoRequest{Message: "x"})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("hung call: %v, want a deadline error", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("hung call returned after %s, deadline 200ms", d)
		}
	}
	// Deadlines are the caller's, not the plugin's fault.
	if st := p.Status(); st.Breaker != "closed" || st.State != StateRunning {
		t.Errorf("status %+v after caller deadlines", st)
	}
}

func TestBreakerFailsFast(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	cfg := fastConfig()
	cfg.Breaker = BreakerConfig{Failures: 2, OpenTimeout: config.Duration(time.Minute)}
	p := startPlugin(t, "flaky", fakeSpec("unavailable"), cfg, rec)
	p.exitWait = 50 * time.Millisecond
	for range 2 {
		_, err := p.Echo().Echo(ctxTimeout(t, 10*time.Second), &pluginv1.EchoRequest{})
		if !errors.Is(err, ErrPluginDown) || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("echo: %v, want ErrPluginDown (unreachable)", err)
		}
	}
	start := time.Now()
	_, err := p.Echo().Echo(ctxTimeout(t, 10*time.Second), &pluginv1.EchoRequest{})
	if !errors.Is(err, ErrPluginDown) || !strings.Contains(err.Error(), "circuit breaker open") {
		t.Errorf("echo with the breaker open: %v", err)
	}
	if d := time.Since(start); d > 20*time.Millisecond {
		t.Errorf("open breaker took %s to fail", d)
	}
	change := rec.waitFor(t, event.BreakerState, nil).Data.(*event.BreakerChange)
	if change.Name != "plugin flaky" || change.To != "open" {
		t.Errorf("breaker event %+v", change)
	}
}

func TestShutdownKillsStubbornPlugin(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.ShutdownTimeout = config.Duration(300 * time.Millisecond)
	p := startPlugin(t, "stubborn", fakeSpec("stubborn"), cfg, nil)
	pid := echo(t, p, "hi")
	start := time.Now()
	err := p.Shutdown(ctxTimeout(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("shutdown: %v, want an error saying it was killed", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s with a 300ms grace", d)
	}
	processGone(t, pid)
}

func TestShutdownHonoursContext(t *testing.T) {
	t.Parallel()
	p := startPlugin(t, "stubborn", fakeSpec("stubborn"), fastConfig(), nil)
	pid := echo(t, p, "hi")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(ctx); err == nil {
		t.Error("shutdown cut short by its context returned no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %s, its context 200ms", d)
	}
	processGone(t, pid)
}

func TestShutdownWhileStarting(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	p := startPlugin(t, "slow", fakeSpec("silent"), fastConfig(), rec)
	p.requestStart()
	rec.waitFor(t, event.PluginLog, func(ev event.Event) bool {
		return strings.Contains(ev.Data.(*event.PluginLogEntry).Message, "never printing a handshake")
	})
	start := time.Now()
	if err := p.Shutdown(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown of a starting plugin took %s", d)
	}
	if err := p.WaitReady(ctxTimeout(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Errorf("wait after shutdown: %v, want ErrClosed", err)
	}
}

func TestCallWaitsForFirstStartWithinContext(t *testing.T) {
	t.Parallel()
	p := startPlugin(t, "slow", fakeSpec("silent"), fastConfig(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Info(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the plugin to start") {
		t.Errorf("call: %v, want a deadline error while waiting for the start", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("call returned after %s, deadline 300ms", d)
	}
}

// After a full life — start, calls, a crash, a restart, a SIGKILL, a
// shutdown — no process and no goroutine is left.
func TestNoOrphansNoLeaks(t *testing.T) {
	cycle := func() []int {
		rec := newRecorder(t)
		p, err := NewPlugin("cycle", fakeSpec("normal"), fastConfig(), Options{Bus: rec.bus})
		if err != nil {
			t.Fatal(err)
		}
		pids := []int{echo(t, p, "one")}
		_, _ = p.Echo().Crash(ctxTimeout(t, 5*time.Second), &pluginv1.CrashRequest{ExitCode: 1})
		if err := p.WaitReady(ctxTimeout(t, 20*time.Second)); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, echo(t, p, "two"))
		if err := syscall.Kill(pids[1], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, event.PluginStart, func(ev event.Event) bool { return ev.Data.(*event.PluginInfo).Generation == 3 })
		pids = append(pids, echo(t, p, "three"))
		if err := p.Shutdown(ctxTimeout(t, 10*time.Second)); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		rec.bus.Close()
		return pids
	}
	cycle() // warm up: gRPC starts some goroutines once per process
	goroutinesSettle(t, runtime.NumGoroutine())
	baseline := runtime.NumGoroutine()
	for _, pid := range cycle() {
		processGone(t, pid)
	}
	goroutinesSettle(t, baseline)
}

func TestHostResolvesAndShutsDown(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Plugins: map[string]PluginSpec{
			"fast":  fakeSpec("normal"),
			"other": fakeSpec("normal"),
		},
		Capabilities: map[string]string{"echo": "fast"},
		Supervisor:   fastConfig(),
	}
	h, err := NewHost(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.ForCapability("echo", "")
	if err != nil || p.Name() != "fast" {
		t.Fatalf("for echo: %v, %v", p, err)
	}
	q, err := h.ForCapability("echo", "other")
	if err != nil || q.Name() != "other" {
		t.Fatalf("for echo with override: %v, %v", q, err)
	}
	if again, _ := h.Plugin("fast"); again != p {
		t.Error("Plugin made a second supervisor for the same name")
	}
	pids := []int{echo(t, p, "a"), echo(t, q, "b")}
	st := h.Status()
	if len(st) != 2 || st[0].Name != "fast" || st[0].State != StateRunning || st[1].State != StateRunning {
		t.Errorf("status %+v", st)
	}
	if _, err := h.Plugin("nope"); !errors.Is(err, ErrUnknownPlugin) {
		t.Errorf("unknown plugin: %v", err)
	}
	if err := h.Shutdown(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		processGone(t, pid)
	}
	if _, err := h.Plugin("fast"); !errors.Is(err, ErrClosed) {
		t.Errorf("plugin after shutdown: %v, want ErrClosed", err)
	}
}

func TestEagerHostStartsEverything(t *testing.T) {
	t.Parallel()
	cfg := Config{Plugins: map[string]PluginSpec{"a": fakeSpec("normal")}, Supervisor: fastConfig()}
	cfg.Supervisor.Eager = true
	rec := newRecorder(t)
	h, err := NewHost(cfg, Options{Bus: rec.bus})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	rec.waitFor(t, event.PluginStart, nil)
}
