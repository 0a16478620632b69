package codeact

import (
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/bridge"
)

// How an interpreter that died mid-execution is reported: by the sandbox
// limit that killed it, as a timeout when the host killed it past the
// execution's timeout, else as a crash that says whether the host killed
// it (its health checks failed) or it died by itself.
func TestCrashObservation(t *testing.T) {
	const timeout = 3 * time.Second
	kill := func(byHost bool, limit string) *bridge.ExitStatus {
		return &bridge.ExitStatus{Pid: 1, Code: -1, Signal: "SIGKILL", ByHost: byHost, Limit: limit}
	}
	for _, tc := range []struct {
		name     string
		exit     *bridge.ExitStatus
		took     time.Duration
		typ      string
		killedBy string
		text     string
	}{
		{"memory", kill(false, "memory"), time.Second, "MemoryLimitExceeded", KilledByMemory, "more memory than the sandbox allows"},
		{"processes", kill(false, "processes"), time.Second, "ProcessLimitExceeded", KilledByProcesses, "more processes or threads"},
		{"cpu", kill(false, "cpu"), time.Second, "CPULimitExceeded", KilledByCPU, "CPU time"},
		{"limit after the timeout", kill(true, "memory"), 5 * time.Second, "MemoryLimitExceeded", KilledByMemory, "(killed by SIGKILL (sandbox memory limit))"},
		{"health checks", kill(true, ""), time.Second, "InterpreterCrash", KilledByCrash, "by the host: it stopped answering the host's health checks"},
		{"host kill past the timeout", kill(true, ""), 5 * time.Second, "ExecutionTimeout", KilledByTimeout, "ran past its timeout of 3s and the interpreter stopped answering"},
		{"segfault", &bridge.ExitStatus{Code: -1, Signal: "SIGSEGV"}, time.Second, "InterpreterCrash", KilledByCrash, "(killed by SIGSEGV)"},
		{"exit", &bridge.ExitStatus{Code: 7}, 5 * time.Second, "InterpreterCrash", KilledByCrash, "(exit code 7)"},
		{"unknown", nil, time.Second, "InterpreterCrash", KilledByCrash, "(the process exited)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := crashObservation(tc.exit, timeout, tc.took)
			if obs.Error == nil || obs.Error.Type != tc.typ || obs.KilledBy != tc.killedBy || !strings.Contains(obs.Error.Message, tc.text) {
				t.Errorf("%+v: error %+v, want %s %q containing %q", obs, obs.Error, tc.typ, tc.killedBy, tc.text)
			}
			if obs.Exit != tc.exit || obs.Duration != tc.took {
				t.Errorf("exit %v, duration %s", obs.Exit, obs.Duration)
			}
		})
	}
}
