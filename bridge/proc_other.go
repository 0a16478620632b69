//go:build !linux

package bridge

import (
	"os"
	"syscall"
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
