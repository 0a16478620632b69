package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dspex/dspex/bridge/bridgetest"
	"github.com/dspex/dspex/sandbox"
)

// interpreterPython returns the repository's virtualenv interpreter when
// it can run the interpreter plugin (make setup), or skips the test.
func interpreterPython(t *testing.T) string {
	t.Helper()
	python, _ := bridgetest.Python(t, "import dspex_plugins.interpreter", "make setup; needed to test code_act, program_of_thought and dspex exec")
	return python
}

type execObservation struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Error    *struct{ Type, Message string }
	Exit     int     `json:"exit"`
	Duration float64 `json:"duration_ms"`
	KilledBy string  `json:"killed_by"`
	Value    string  `json:"value"`
}

func TestExec(t *testing.T) {
	env := []string{"DSPEX_PYTHON=" + interpreterPython(t)}
	snippet := writeFile(t, "s.py", "import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7\n")

	// Without bubblewrap no sandbox can be created: refused, unless
	// --unsafe-no-sandbox, which says so.
	noBwrap := append([]string{"PATH=" + t.TempDir()}, env...)
	_, stderr, code := runDspex(t, noBwrap, "exec", snippet)
	if code != 1 || !strings.Contains(stderr, "refusing to run untrusted code") || !strings.Contains(stderr, "--unsafe-no-sandbox") {
		t.Errorf("without a sandbox: exit %d, stderr %q", code, stderr)
	}
	out, stderr, code := runDspex(t, noBwrap, "exec", "--unsafe-no-sandbox", snippet)
	if code != 0 || !strings.Contains(out, `"stdout":"out\n"`) || !strings.Contains(stderr, "WITHOUT isolation") {
		t.Errorf("--unsafe-no-sandbox without a sandbox: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	sandboxed := sandbox.Check(t.Context(), sandbox.Config{Python: interpreterPython(t)}).Available

	for _, tc := range []struct {
		name, code string
		args       []string
		exit       int
		killedBy   string
		errType    string
	}{
		{"ok", "", []string{snippet}, 0, "", ""},
		{"uid", "import os\nos.getuid()", nil, 0, "", ""},
		{"raises", "1/0", nil, 1, "", "ZeroDivisionError"},
		{"exits", "import os\nos._exit(3)", nil, 3, "crash", "InterpreterCrash"},
		{"segfault", "import ctypes\nctypes.string_at(0)", nil, 139, "crash", "InterpreterCrash"},
		{"timeout", "while True:\n    pass", []string{"--timeout", "500ms"}, 124, "timeout", "ExecutionTimeout"},
		{"flood", "while True:\n    print('x' * 1000)", []string{"--max-output", "100"}, 1, "output", "OutputLimitExceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"exec"}, tc.args...)
			if !sandboxed {
				args = append(args, "--unsafe-no-sandbox")
			}
			if tc.code != "" {
				args = append(args, writeFile(t, "c.py", tc.code))
			}
			out, stderr, code := runDspex(t, env, args...)
			var obs execObservation
			if err := json.Unmarshal([]byte(out), &obs); err != nil {
				t.Fatalf("%v: %q (stderr %q)", err, out, stderr)
			}
			if obs.Exit != tc.exit || obs.KilledBy != tc.killedBy || (code == 0) != (tc.exit == 0) {
				t.Errorf("exit %d, observation %+v (stderr %q)", code, obs, stderr)
			}
			if tc.errType == "" && obs.Error != nil || tc.errType != "" && (obs.Error == nil || obs.Error.Type != tc.errType) {
				t.Errorf("error %+v, want %q", obs.Error, tc.errType)
			}
			if tc.name == "ok" && (obs.Stdout != "out\n" || obs.Stderr != "err\n" || obs.Value != "42" || obs.Duration <= 0) {
				t.Errorf("observation %+v", obs)
			}
			if tc.name == "uid" && sandboxed && obs.Value != "65534" {
				t.Errorf("uid %s inside the sandbox", obs.Value)
			}
		})
	}
}

const codeActScript = `rules:
  - match: 'code_output_0"'
    fields:
      generated_code: "` + "```" + `python\nSUBMIT(answer=int(a + b))\n` + "```" + `"
      finished: true
  - match: "[[ ## trajectory ## ]]\n{}"
    fields:
      generated_code: "` + "```" + `python\na = float(calculator(expression='12*7'))\nb = float(calculator('100/4'))\nprint(a + b)\n` + "```" + `"
      finished: false
`

const potScript = `rules:
  - match: "[[ ## code_output ## ]]"
    fields: {reasoning: "the code computed it", answer: "42"}
  - match: "What is 6 times 7?"
    fields:
      reasoning: compute it
      generated_code: "` + "```" + `python\nSUBMIT({'answer': 6 * 7})\n` + "```" + `"
`

// code_act and program_of_thought from a program file, through dspex run,
// against the simulated LM.
func TestRunInterpreterModules(t *testing.T) {
	env := []string{"DSPEX_PYTHON=" + interpreterPython(t)}
	for _, tc := range []struct{ name, script, program, input, want string }{
		{"code_act", codeActScript, "module: code_act\n  signature: \"question -> answer: int\"\n  tools: [calculator]",
			`{"question": "What is 12*7 + 100/4?"}`, `"answer": 109`},
		{"program_of_thought", potScript, "module: program_of_thought\n  signature: \"question -> answer: int\"",
			`{"question": "What is 6 times 7?"}`, `"answer": 42`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startMockLM(t, "--script", writeFile(t, "script.yaml", tc.script))
			// Sandboxed where a sandbox can be created, as the built-in
			// registry has it; elsewhere without one.
			prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram:\n  "+tc.program+
				"\nplugins:\n  plugins:\n    interpreter:\n      args: [-m, dspex_plugins.interpreter]\n      capabilities: [interpreter]\n"+
				"      sandbox: true\n      unsafe_no_sandbox: true\n")
			out, stderr, code := runDspex(t, env, "run", "--program", prog, "--input", tc.input, "--no-cache")
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
			}
		})
	}
}
