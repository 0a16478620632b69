package cli_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/plugins/codeact/codeacttest"
)

// Issue 13's hostile code through `dspex exec`, each case a fresh
// sandboxed interpreter with the suite's small limits (from --config):
// the JSON observation's error, exit and killed_by say what happened,
// dspex exits 1 for code that failed or was killed and 0 for code that
// ran through, limits end the code quickly where they should, and the
// host is fine (a host process the code tried to kill lives, nothing was
// written on the host, a plain exec afterwards works). The cases are
// plugins/codeact's TestHostileCode's but those that call tools (exec
// gives the code none). The cases run in parallel (each is its own dspex
// process and sandbox). It fails where no sandbox can be made;
// DSPEX_SANDBOX_SKIP=1 skips it.
func TestExecHostile(t *testing.T) {
	python := interpreterPython(t)
	env := codeacttest.HostileSetup(t, python)
	runEnv := []string{"DSPEX_PYTHON=" + python}
	limits := codeacttest.HostileLimits()
	cfg := writeFile(t, "plugins.yaml", "plugins:\n  plugins:\n    interpreter:\n      args: [-m, dspex_plugins.interpreter]\n"+
		"      capabilities: [interpreter]\n      sandbox: true\n"+
		"      sandbox_limits: {memory: "+strconv.FormatInt(limits.Memory, 10)+", processes: "+strconv.Itoa(limits.Processes)+"}\n")
	timeout := codeacttest.HostileTimeout
	plain := writeFile(t, "plain.py", "6 * 7")
	for _, tc := range codeacttest.HostileCases(env) {
		if tc.Tools {
			continue
		}
		t.Run(tc.Name, func(t *testing.T) {
			// Each case its own process and sandbox: side by side, within
			// -parallel.
			t.Parallel()
			out, stderr, code := runDspex(t, runEnv, "exec", "--timeout", timeout.String(), "--config", cfg, writeFile(t, "hostile.py", tc.Code))
			var obs struct {
				Stdout string `json:"stdout"`
				Error  *struct {
					Type      string `json:"type"`
					Message   string `json:"message"`
					Traceback string `json:"traceback"`
				} `json:"error"`
				Exit       *int    `json:"exit"`
				DurationMS float64 `json:"duration_ms"`
				KilledBy   string  `json:"killed_by"`
			}
			if err := json.Unmarshal([]byte(out), &obs); err != nil || obs.Exit == nil {
				t.Fatalf("not an observation (%v): %q; stderr %q", err, out, stderr)
			}
			t.Logf("exit %d: %s", code, out)
			if *obs.Exit != tc.Exit || obs.KilledBy != tc.KilledBy {
				t.Errorf("exit %d killed_by %q, want %d and %q", *obs.Exit, obs.KilledBy, tc.Exit, tc.KilledBy)
			}
			if want := min(tc.Exit, 1); code != want {
				t.Errorf("dspex exited %d, want %d (stderr %q)", code, want, stderr)
			}
			switch {
			case tc.ErrType == "" && obs.Error != nil:
				t.Errorf("error %+v, want none", obs.Error)
			case tc.ErrType != "" && obs.Error == nil:
				t.Errorf("no error, want %s", tc.ErrType)
			case tc.ErrType != "" && (obs.Error.Type != tc.ErrType || !strings.Contains(obs.Error.Message, tc.ErrText)):
				t.Errorf("error %+v, want %s containing %q", obs.Error, tc.ErrType, tc.ErrText)
			}
			// The traceback, where there is one, is the code's, not the
			// plugin's.
			if obs.Error != nil && strings.Contains(obs.Error.Traceback, "dspex_plugins") {
				t.Errorf("the traceback shows the plugin's frames:\n%s", obs.Error.Traceback)
			}
			if tc.Stdout != "" && obs.Stdout != tc.Stdout {
				t.Errorf("stdout\n%s\nwant\n%s", obs.Stdout, tc.Stdout)
			}
			if tc.Check != nil {
				tc.Check(t, obs.Stdout)
			}
			if took := time.Duration(obs.DurationMS * float64(time.Millisecond)); tc.Quick && took > timeout/2 {
				t.Errorf("took %s: it must end well before the %s timeout", took, timeout)
			}
			env.HostFine(t)
			if tc.Discard {
				out, stderr, code := runDspex(t, runEnv, "exec", "--config", cfg, plain)
				if code != 0 || !strings.Contains(out, `"value":"42"`) {
					t.Errorf("a plain exec afterwards: exit %d, %s (stderr %q)", code, out, stderr)
				}
			}
		})
	}
}
