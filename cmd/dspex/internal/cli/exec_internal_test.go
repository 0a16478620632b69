package cli

import (
	"testing"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/plugins/codeact"
)

// dspex exec's "exit": 0 ran through, 1 raised, 124 timed out (however the
// interpreter ended), else 128+N for a signal N that ended the interpreter
// (a crash or a sandbox limit), or the exit code it exited with.
func TestExitOf(t *testing.T) {
	errObs := func(killedBy string, exit *bridge.ExitStatus) *codeact.Observation {
		return &codeact.Observation{Error: &codeact.ExecError{Type: "X"}, KilledBy: killedBy, Exit: exit}
	}
	for _, tc := range []struct {
		name string
		obs  *codeact.Observation
		want int
	}{
		{"ran through", &codeact.Observation{}, 0},
		{"raised", errObs("", nil), 1},
		{"memory error", errObs(codeact.KilledByMemory, nil), 1},
		{"timeout", errObs(codeact.KilledByTimeout, nil), 124},
		{"timeout, killed by the host", errObs(codeact.KilledByTimeout, &bridge.ExitStatus{Code: -1, Signal: "SIGKILL", ByHost: true}), 124},
		{"memory limit", errObs(codeact.KilledByMemory, &bridge.ExitStatus{Code: -1, Signal: "SIGKILL", Limit: "memory"}), 137},
		{"processes", errObs(codeact.KilledByProcesses, &bridge.ExitStatus{Code: -1, Signal: "SIGKILL", Limit: "processes"}), 137},
		{"segfault", errObs(codeact.KilledByCrash, &bridge.ExitStatus{Code: -1, Signal: "SIGSEGV"}), 139},
		{"SIGSYS", errObs(codeact.KilledByCrash, &bridge.ExitStatus{Code: -1, Signal: "SIGSYS"}), 159},
		{"exit code", errObs(codeact.KilledByCrash, &bridge.ExitStatus{Code: 7}), 7},
		{"exit 0 mid-run", errObs(codeact.KilledByCrash, &bridge.ExitStatus{Code: 0}), 1},
	} {
		if got := exitOf(tc.obs); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}
