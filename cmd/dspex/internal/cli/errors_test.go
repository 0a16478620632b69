package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// failingProgram is a chain-of-thought program against a simulated LM
// that answers every request with HTTP 500, making three attempts in all
// (and no circuit breaker, which would fail later inputs differently).
func failingProgram(t *testing.T) string {
	t.Helper()
	url := startMockLM(t, "--fault", "500")
	return writeFile(t, "p.yaml", "lm:\n  model: dspex-sim\n  base_url: \""+url+"\"\n  api_key_env: DSPEX_TEST_UNSET\n"+
		"  retry: {max_attempts: 3, initial_backoff: 1ms, max_backoff: 2ms}\n"+
		"  breaker: {failures: -1}\n"+
		"program: {module: chain_of_thought, signature: \"question -> answer\"}\n")
}

// reportLines are the lines of stderr the command itself wrote (not the
// log's, not the progress display's) that mention the error.
func reportLines(stderr, mention string) []string {
	var out []string
	for l := range strings.SplitSeq(stderr, "\n") {
		if strings.HasPrefix(l, "dspex: ") && strings.Contains(l, mention) {
			out = append(out, l)
		}
	}
	return out
}

// One failing input is reported once: one JSON line on stdout (not
// HTML-escaped), one line on stderr with the attempts made; no log line
// repeats it and no summary line restates it.
func TestRunFailureReportedOnce(t *testing.T) {
	prog := failingProgram(t)
	stdout, stderr, code := runDspex(t, nil, "run", "--program", prog, "--input", `{"question": "a <b> & c"}`,
		"--no-cache", "--no-traces", "--no-progress")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if strings.Contains(stdout, `\u003e`) || strings.Contains(stdout, `\u003c`) || strings.Count(stdout, "\n") != 1 {
		t.Errorf("stdout %q: want one JSON line without HTML escapes", stdout)
	}
	var line map[string]string
	if err := json.Unmarshal([]byte(stdout), &line); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	msg := line["error"]
	if !strings.Contains(msg, "question -> reasoning, answer") || !strings.Contains(msg, "HTTP 500") || !strings.HasSuffix(msg, "(after 3 attempts)") {
		t.Errorf("error = %q, want the predictor, the HTTP status and the attempts", msg)
	}
	if got := reportLines(stderr, "HTTP 500"); len(got) != 1 || got[0] != "dspex: "+msg {
		t.Errorf("stderr reports %q, want exactly \"dspex: %s\"; stderr:\n%s", got, msg, stderr)
	}
	for _, dup := range []string{"[ERROR]", "run failed", "lm call failed", "inputs failed"} {
		if strings.Contains(stderr, dup) {
			t.Errorf("stderr repeats the failure as %q:\n%s", dup, stderr)
		}
	}

	// At info level the log has the failed call, with its attempts counted.
	_, stderr, _ = runDspex(t, nil, "run", "--program", prog, "--input", `{"question": "q"}`,
		"--no-cache", "--no-traces", "--no-progress", "--log-level", "info", "--log-json")
	found := false
	for l := range strings.SplitSeq(stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["@message"] != "lm call failed" {
			continue
		}
		found = true
		if m["attempts"] != 3.0 {
			t.Errorf("lm call failed: attempts = %v, want 3", m["attempts"])
		}
		if s, _ := m["error"].(string); strings.Contains(l, `\u003e`) || !strings.Contains(s, "HTTP 500") {
			t.Errorf("lm call failed line %s", l)
		}
	}
	if !found {
		t.Errorf("no lm call failed line at info level:\n%s", stderr)
	}
}

// Several failing inputs: one line each naming file and line, then the
// count.
func TestRunFailuresNameTheirLines(t *testing.T) {
	prog := failingProgram(t)
	data := writeFile(t, "in.jsonl", "{\"question\": \"a\"}\n\n{\"question\": \"b\"}\n")
	stdout, stderr, code := runDspex(t, nil, "run", "--program", prog, "--inputs", data, "--no-cache", "--no-traces", "--no-progress")
	if code != 1 || strings.Count(stdout, `{"error": `) != 2 {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	got := reportLines(stderr, "HTTP 500")
	if len(got) != 2 || !strings.HasPrefix(got[0], "dspex: "+data+":1: ") || !strings.HasPrefix(got[1], "dspex: "+data+":3: ") {
		t.Errorf("stderr reports %q, want lines 1 and 3 of %s", got, data)
	}
	if !strings.Contains(stderr, "dspex: 2 of 2 inputs failed") {
		t.Errorf("no count of failed inputs:\n%s", stderr)
	}
}

// dspex run checks inputs as dspex serve does, before any LM call (the
// endpoint here is closed: reaching it would be a connection error).
func TestRunChecksInputs(t *testing.T) {
	prog := writeFile(t, "p.yaml", "lm: {model: m, base_url: \"http://127.0.0.1:1/v1\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"program: {module: predict, signature: \"question, context: list[str] -> answer\"}\n")
	for _, c := range []struct{ input, want string }{
		{`{"questoin": "q", "context": []}`, `unknown input field "questoin"; did you mean "question"?`},
		{`{"question": 123, "context": []}`, `input field "question": expected str, got number 123`},
		{`{"question": "q", "context": "c", "extra": 1}`, `unknown input field "extra"; the inputs are: question, context`},
		{`{"question": "q"}`, `missing input field "context"`},
	} {
		stdout, stderr, code := runDspex(t, nil, "run", "--program", prog, "--input", c.input, "--no-cache", "--no-traces")
		var line map[string]string
		if code != 1 || json.Unmarshal([]byte(stdout), &line) != nil || !strings.HasSuffix(line["error"], c.want) {
			t.Errorf("%s: exit %d, stdout %q, want an error ending %q; stderr:\n%s", c.input, code, stdout, c.want, stderr)
		}
	}
}

// Blank lines are skipped; a broken line stops the run before any LM
// call, naming its line, unless --skip-invalid passes over it and reports
// it at the end. eval (and optimize, which reads data the same way) too.
func TestJSONLSkipInvalid(t *testing.T) {
	url := startMockLM(t)
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"program: {module: predict, signature: \"question -> answer\"}\n")
	data := writeFile(t, "in.jsonl", "{\"question\": \"a\"}\n\n  \nnot json\n{\"question\": \"b\"}\n")

	stdout, stderr, code := runDspex(t, nil, "run", "--program", prog, "--inputs", data, "--no-traces")
	if code != 1 || stdout != "" || !strings.Contains(stderr, data+":4: ") {
		t.Errorf("run: exit %d, stdout %q, stderr %s; want exit 1 naming line 4", code, stdout, stderr)
	}
	stdout, stderr, code = runDspex(t, nil, "run", "--program", prog, "--inputs", data, "--no-traces", "--skip-invalid")
	if code != 0 || strings.Count(stdout, "\n") != 2 || strings.Contains(stdout, "error") {
		t.Errorf("run --skip-invalid: exit %d, stdout %q; want two predictions", code, stdout)
	}
	if !strings.Contains(stderr, "dspex: skipped 1 invalid line:\ndspex:   "+data+":4: ") {
		t.Errorf("run --skip-invalid does not report line 4:\n%s", stderr)
	}

	data = writeFile(t, "dev.jsonl", "{\"question\": \"a\", \"answer\": \"x\"}\n\n  \nnot json\n{\"question\": \"b\"}\n")
	_, stderr, code = runDspex(t, nil, "eval", "--program", prog, "--data", data, "--no-traces")
	if code != 1 || !strings.Contains(stderr, data+":4: ") {
		t.Errorf("eval: exit %d, stderr %s; want exit 1 naming line 4", code, stderr)
	}
	stdout, stderr, code = runDspex(t, nil, "eval", "--program", prog, "--data", data, "--no-traces", "--skip-invalid")
	if code != 0 || !strings.Contains(stdout, "of 1\n") {
		t.Errorf("eval --skip-invalid: exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	want := "dspex: skipped 2 invalid lines:\ndspex:   " + data + ":4: "
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, data+`:5: missing gold field "answer"`) {
		t.Errorf("eval --skip-invalid does not report lines 4 and 5:\n%s", stderr)
	}
}
