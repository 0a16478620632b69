//go:build !linux

package bridge

import (
	"os"
	"syscall"

	"github.com/dspex/dspex/sandbox"
)

// sysProcAttr: outside Linux the plugin shares the host's process group.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { _ = p.Kill() }

func exitStatus(pid int, ps *os.ProcessState, byHost bool) ExitStatus {
	st := ExitStatus{Pid: pid, Code: ps.ExitCode(), ByHost: byHost}
	if st.Code == -1 {
		st.Signal = "a signal"
	}
	return st
}

func sandboxExitStatus(pid int, c *sandbox.Cmd, byHost bool) ExitStatus {
	if ps := c.ProcessState(); ps != nil {
		return exitStatus(pid, ps, byHost)
	}
	return ExitStatus{Pid: pid, Code: -1, ByHost: byHost}
}
