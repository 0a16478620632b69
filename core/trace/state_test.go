package trace

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
)

// A run its store keeps open gets heartbeats while nothing else is
// written, and stops getting them at its end.
func TestHeartbeatMarksOpenRunsAlive(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{FlushInterval: time.Millisecond, HeartbeatInterval: 20 * time.Millisecond})
	e := newEmitter(bus, "run1", time.Now())
	e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "optimize"})
	r := openReader(t, path)
	ctx := context.Background()
	read := func() Run {
		t.Helper()
		run, err := r.Run(ctx, "run1")
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	var first time.Time
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if run, err := r.Run(ctx, "run1"); err == nil && !run.HeartbeatAt.IsZero() {
			first = run.HeartbeatAt
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if first.IsZero() {
		t.Fatal("the run never got a heartbeat")
	}
	for time.Now().Before(deadline) && !read().HeartbeatAt.After(first) {
		time.Sleep(5 * time.Millisecond)
	}
	run := read()
	if !run.HeartbeatAt.After(first) {
		t.Fatalf("heartbeat stayed at %v with no new events", first)
	}
	if run.Pid != os.Getpid() || run.Host != hostName() {
		t.Errorf("pid %d host %q; want %d %q", run.Pid, run.Host, os.Getpid(), hostName())
	}
	if got := run.State(time.Now()); got != "running" {
		t.Errorf("State = %q; want running", got)
	}
	e.emit(event.RunEnd, "root", "", &event.RunInfo{Name: "optimize"})
	closeStore(t, s)
	ended := read()
	time.Sleep(50 * time.Millisecond)
	if got := read(); !got.HeartbeatAt.Equal(ended.HeartbeatAt) || got.State(time.Now()) != "ok" {
		t.Errorf("after the end: heartbeat %v (was %v), state %q", got.HeartbeatAt, ended.HeartbeatAt, got.State(time.Now()))
	}
}

func TestRunState(t *testing.T) {
	// A pid no process has: one that has exited and been reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	gone := cmd.Process.Pid
	now := time.Now()
	host := hostName()
	for _, tc := range []struct {
		name string
		run  Run
		want string
	}{
		{"ended ok", Run{Status: "ok", Pid: gone, Host: host, HeartbeatAt: now.Add(-time.Hour)}, "ok"},
		{"ended with an error", Run{Status: "error"}, "error"},
		{"alive", Run{Status: "running", Pid: os.Getpid(), Host: host, HeartbeatAt: now.Add(-time.Second)}, "running"},
		{"process gone", Run{Status: "running", Pid: gone, Host: host, HeartbeatAt: now.Add(-time.Second)}, StateDied},
		{"other host, recent heartbeat", Run{Status: "running", Pid: gone, Host: host + "-elsewhere", HeartbeatAt: now.Add(-time.Second)}, "running"},
		{"stale heartbeat", Run{Status: "running", Pid: os.Getpid(), Host: host, HeartbeatAt: now.Add(-DeadAfter - time.Second)}, StateDied},
		{"old file, recent write", Run{Status: "running", UpdatedAt: now.Add(-time.Minute)}, "running"},
		{"old file, long quiet", Run{Status: "running", UpdatedAt: now.Add(-time.Hour)}, StateDied},
	} {
		if got := tc.run.State(now); got != tc.want {
			t.Errorf("%s: State = %q; want %q", tc.name, got, tc.want)
		}
	}
}
