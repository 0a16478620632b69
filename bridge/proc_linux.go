//go:build linux

package bridge

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/dspex/dspex/sandbox"
)

// sysProcAttr puts the plugin in a process group of its own, so that a
// terminal's Ctrl-C reaches only the host (which then shuts the plugin
// down) and a kill reaches the plugin's children too; and asks the kernel
// to kill the plugin if the host dies, so that no plugin outlives it.
// (Pdeathsig fires when the OS thread that started the process exits; Go
// keeps its threads unless a goroutine exits while locked to one, which
// nothing in the host does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends SIGKILL to p's process group, and to p itself should the
// group be gone.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
}

func exitStatus(pid int, ps *os.ProcessState, byHost bool) ExitStatus {
	st := ExitStatus{Pid: pid, Code: ps.ExitCode(), ByHost: byHost}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.Code = -1
		if st.Signal = unix.SignalName(ws.Signal()); st.Signal == "" {
			st.Signal = ws.Signal().String()
		}
	}
	return st
}

// sandboxExitStatus is how a sandboxed plugin ended. bwrap, the process
// the host waits for, exits with 128+N when the plugin dies of signal N;
// the sandbox says which of its limits, if any, ended it.
func sandboxExitStatus(pid int, c *sandbox.Cmd, byHost bool) ExitStatus {
	var limit string
	if k := c.KilledBy(); sandbox.IsLimit(k) {
		limit = k
	}
	ps := c.ProcessState()
	if ps == nil {
		return ExitStatus{Pid: pid, Code: -1, ByHost: byHost, Limit: limit}
	}
	st := exitStatus(pid, ps, byHost)
	st.Limit = limit
	if st.Signal == "" && st.Code > 128 && st.Code < 128+65 {
		sig := syscall.Signal(st.Code - 128)
		st.Code = -1
		if st.Signal = unix.SignalName(sig); st.Signal == "" {
			st.Signal = sig.String()
		}
	}
	return st
}
