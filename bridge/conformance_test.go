package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/event"
)

// runConformance checks the contract every DSPEx plugin serving the echo
// capability keeps, against a plugin started from spec: the Go fake and
// the Python echo plugin both pass it.
func runConformance(t *testing.T, spec PluginSpec, cfg SupervisorConfig) {
	t.Run("InfoAndHealth", func(t *testing.T) {
		rec := newRecorder(t)
		p := startPlugin(t, "conf", spec, cfg, rec)
		info, err := p.Info(ctxTimeout(t, 20*time.Second))
		if err != nil {
			t.Fatalf("info: %v", err)
		}
		if info.GetProtocol() != Protocol {
			t.Errorf("protocol %q, want %q", info.GetProtocol(), Protocol)
		}
		if info.GetName() == "" || info.GetVersion() == "" {
			t.Errorf("info lacks a name or version: %v", info)
		}
		if !slices.Contains(info.GetCapabilities(), "echo") {
			t.Errorf("capabilities %v lack echo", info.GetCapabilities())
		}
		if err := p.Check(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Errorf("health: %v", err)
		}
		st := p.Status()
		if st.State != StateRunning || st.Pid == 0 || st.Starts != 1 {
			t.Errorf("status %+v, want running with a pid after one start", st)
		}
		start := rec.waitFor(t, event.PluginStart, nil).Data.(*event.PluginInfo)
		if start.Pid != st.Pid || start.Plugin != "conf" || start.Generation != 1 || start.Command == "" {
			t.Errorf("start event %+v, status %+v", start, st)
		}
	})

	t.Run("EchoRoundTrip", func(t *testing.T) {
		p := startPlugin(t, "conf", spec, cfg, nil)
		payload := bytes.Repeat([]byte{0, 1, 2, 0xff, 'x'}, 64<<10/5)
		resp, err := p.Echo().Echo(ctxTimeout(t, 20*time.Second), &pluginv1.EchoRequest{Message: "héllo\n", Payload: payload})
		if err != nil {
			t.Fatalf("echo: %v", err)
		}
		if resp.GetMessage() != "héllo\n" || !bytes.Equal(resp.GetPayload(), payload) {
			t.Errorf("echo changed the message or payload: %q, %d bytes", resp.GetMessage(), len(resp.GetPayload()))
		}
		if int(resp.GetPid()) != p.Pid() {
			t.Errorf("echo pid %d, plugin pid %d", resp.GetPid(), p.Pid())
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				msg := fmt.Sprint("call ", i)
				r, err := p.Echo().Echo(ctxTimeout(t, 10*time.Second), &pluginv1.EchoRequest{Message: msg})
				if err == nil && r.GetMessage() != msg {
					err = fmt.Errorf("sent %q, got %q", msg, r.GetMessage())
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent echo: %v", err)
		}
	})

	t.Run("CallDeadlineAndCancel", func(t *testing.T) {
		p := startPlugin(t, "conf", spec, cfg, nil)
		pid := echo(t, p, "before")
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := p.Echo().Sleep(ctx, &pluginv1.SleepRequest{Seconds: 30})
		if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("sleep past the deadline: %v, want a deadline error", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("sleep returned after %s, deadline was 300ms", d)
		}
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		if _, err := p.Echo().Sleep(ctx, &pluginv1.SleepRequest{Seconds: 30}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled sleep: %v, want context.Canceled", err)
		}
		if got := echo(t, p, "after"); got != pid {
			t.Errorf("plugin restarted (pid %d → %d) after a call's deadline", pid, got)
		}
		if b := p.Status().Breaker; b != "closed" {
			t.Errorf("breaker %s after caller deadlines, want closed", b)
		}
	})

	t.Run("CrashRestart", func(t *testing.T) {
		rec := newRecorder(t)
		p := startPlugin(t, "conf", spec, cfg, rec)
		pid := echo(t, p, "before")
		_, err := p.Echo().Crash(ctxTimeout(t, 10*time.Second), &pluginv1.CrashRequest{ExitCode: 7})
		var pe *Error
		if !errors.Is(err, ErrPluginExited) || !errors.As(err, &pe) || pe.Exit == nil || pe.Exit.Code != 7 {
			t.Fatalf("crash call: %v, want ErrPluginExited with exit code 7", err)
		}
		processGone(t, pid)
		if err := p.WaitReady(ctxTimeout(t, 20*time.Second)); err != nil {
			t.Fatalf("wait for restart: %v", err)
		}
		if got := echo(t, p, "after"); got == pid {
			t.Errorf("echo after the restart served by the crashed pid %d", pid)
		}
		exit := rec.waitFor(t, event.PluginExit, nil).Data.(*event.PluginInfo)
		if exit.ExitCode != 7 || exit.Pid != pid || !strings.Contains(exit.Reason, "exit code 7") {
			t.Errorf("exit event %+v", exit)
		}
		rec.waitFor(t, event.PluginRestart, nil)
		rec.waitFor(t, event.PluginStart, func(ev event.Event) bool { return ev.Data.(*event.PluginInfo).Generation == 2 })
	})

	t.Run("KillMidCall", func(t *testing.T) {
		p := startPlugin(t, "conf", spec, cfg, nil)
		pid := echo(t, p, "before")
		errc := make(chan error, 1)
		go func() {
			_, err := p.Echo().Sleep(ctxTimeout(t, 60*time.Second), &pluginv1.SleepRequest{Seconds: 30})
			errc <- err
		}()
		time.Sleep(300 * time.Millisecond) // let the call reach the plugin
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var err error
		select {
		case err = <-errc:
		case <-time.After(10 * time.Second):
			t.Fatal("the call in flight did not return within 10s of the SIGKILL")
		}
		var pe *Error
		if !errors.Is(err, ErrPluginExited) || !errors.As(err, &pe) || pe.Exit == nil || pe.Exit.Signal != "SIGKILL" {
			t.Fatalf("call in flight: %v, want ErrPluginExited killed by SIGKILL", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "plugin conf") || !strings.Contains(msg, "killed by SIGKILL") {
			t.Errorf("error %q should name the plugin and say it was killed", msg)
		}
		if err := p.WaitReady(ctxTimeout(t, 20*time.Second)); err != nil {
			t.Fatalf("wait for restart: %v", err)
		}
		if got := echo(t, p, "after"); got == pid {
			t.Errorf("echo after the restart served by the killed pid %d", pid)
		}
	})

	t.Run("StreamEndsWithProcess", func(t *testing.T) {
		p := startPlugin(t, "conf", spec, cfg, nil)
		pid := echo(t, p, "hi")
		watch, err := healthpb.NewHealthClient(p.Conn()).Watch(ctxTimeout(t, 30*time.Second), &healthpb.HealthCheckRequest{Service: "plugin"})
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		first, err := watch.Recv()
		if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("first watch status: %v, %v", first, err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for {
			_, err = watch.Recv()
			if err != nil {
				break
			}
		}
		if !errors.Is(err, ErrPluginExited) || !strings.Contains(err.Error(), "killed by SIGKILL") {
			t.Errorf("stream open across the SIGKILL: %v, want ErrPluginExited", err)
		}
	})

	t.Run("Shutdown", func(t *testing.T) {
		rec := newRecorder(t)
		p := startPlugin(t, "conf", spec, cfg, rec)
		pid := echo(t, p, "hello")
		if err := p.Shutdown(ctxTimeout(t, 20*time.Second)); err != nil {
			t.Errorf("shutdown: %v (the plugin should exit when asked)", err)
		}
		processGone(t, pid)
		if st := p.State(); st != StateStopped {
			t.Errorf("state %s after shutdown", st)
		}
		if _, err := p.Info(ctxTimeout(t, time.Second)); !errors.Is(err, ErrClosed) {
			t.Errorf("call after shutdown: %v, want ErrClosed", err)
		}
		exit := rec.waitFor(t, event.PluginExit, nil).Data.(*event.PluginInfo)
		if exit.Reason != "shutdown" || exit.Signal != "" {
			t.Errorf("exit event %+v, want a clean shutdown", exit)
		}
	})
}

// processGone fails unless pid is gone: neither running nor a zombie
// waiting to be reaped (kill(pid, 0) fails with ESRCH only once the
// process has been reaped).
func processGone(t testing.TB, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("bad pid %d", pid)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		t.Errorf("process %d still exists (kill 0: %v; /proc stat: %s)", pid, err, bytes.TrimSpace(stat))
	}
}

func TestConformanceGoFake(t *testing.T) {
	t.Parallel()
	runConformance(t, fakeSpec("normal"), fastConfig())
}
