package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/cmd/dspex/internal/clitest"
)

// dspexBin is the dspex binary built once for the end-to-end tests.
var dspexBin string

// e2eVersion is the release the test binary is built as.
const e2eVersion = "0.0.0-e2e"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dspex-e2e")
	if err != nil {
		panic(err)
	}
	dspexBin = filepath.Join(dir, "dspex")
	// The version is set as the Makefile's build sets it, so that the
	// tests see it reach every place that reports it.
	build := exec.Command("go", "build", "-ldflags", "-X github.com/dspex/dspex/core/version.version="+e2eVersion,
		"-o", dspexBin, "github.com/dspex/dspex/cmd/dspex")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("build dspex: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// startMockLM runs `dspex mock-lm` as a real process on a free loopback
// port and returns its base URL; it is stopped at cleanup.
func startMockLM(t *testing.T, args ...string) string {
	t.Helper()
	return clitest.StartMockLM(t, dspexBin, args...)
}

func runDspex(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dspexBin, args...)
	// Keep the default response cache and trace database out of the user's
	// directories.
	cmd.Env = append(append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "XDG_STATE_HOME="+t.TempDir(), "DSPEX_DB="), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunEndToEnd(t *testing.T) {
	script := writeFile(t, "script.yaml", `rules:
  - match: capital of France
    fields: {reasoning: "Paris is the capital.", answer: Paris, confidence: 0.9}
`)
	url := startMockLM(t, "--script", script)
	prog := writeFile(t, "program.yaml", `lm:
  model: dspex-sim
  base_url: ${TEST_LM_URL}
program:
  module: chain_of_thought
  signature: "question -> answer, confidence: float"
`)
	env := []string{"TEST_LM_URL=" + url}

	out, stderr, code := runDspex(t, env, "run", "--program", prog, "--input", `{"question": "What is the capital of France?"}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	if got["answer"] != "Paris" || got["confidence"] != 0.9 || got["reasoning"] != "Paris is the capital." {
		t.Errorf("prediction = %v", got)
	}

	// Several inputs: one line per input, in order; placeholders for unscripted questions.
	data := writeFile(t, "in.jsonl", "{\"question\": \"What is the capital of France?\"}\n{\"question\": \"Unscripted?\"}\n{\"question\": \"What is the capital of France?\"}\n")
	out, stderr, code = runDspex(t, env, "run", "--program", prog, "--inputs", data, "--concurrency", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", out)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		if _, ok := m["confidence"].(float64); !ok {
			t.Errorf("line %d: confidence not a number: %v", i+1, m)
		}
		if (i != 1) != (m["answer"] == "Paris") {
			t.Errorf("line %d out of order: %v", i+1, m)
		}
	}
}

// Two runs share one cache file: the second is answered from disk without
// reaching the LM, and a corrupt cache file is reported and bypassed.
func TestRunCache(t *testing.T) {
	url := startMockLM(t)
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"q -> a\"}\n")
	cacheFile := filepath.Join(t.TempDir(), "cache.db")
	data := writeFile(t, "in.jsonl", "{\"q\": \"1\"}\n{\"q\": \"2\"}\n{\"q\": \"3\"}\n")
	first, stderr, code := runDspex(t, nil, "run", "--program", prog, "--inputs", data, "--cache", cacheFile)
	if code != 0 || !strings.Contains(stderr, "3 LM calls (0 from cache") {
		t.Fatalf("first run: exit %d, stderr %s", code, stderr)
	}
	second, stderr, code := runDspex(t, nil, "run", "--program", prog, "--inputs", data, "--cache", cacheFile)
	if code != 0 || !strings.Contains(stderr, "3 LM calls (3 from cache") || !strings.Contains(stderr, " 0 tokens") {
		t.Fatalf("second run: exit %d, stderr %s", code, stderr)
	}
	if first != second {
		t.Errorf("cached answers differ:\n%s\n%s", first, second)
	}
	out, _, code := runDspex(t, nil, "cache", "stats", "--path", cacheFile)
	if code != 0 || !strings.Contains(out, "3 entries") {
		t.Errorf("cache stats: exit %d: %s", code, out)
	}
	out, _, code = runDspex(t, nil, "cache", "clear", "--path", cacheFile)
	if code != 0 || !strings.Contains(out, "cleared 3 entries") {
		t.Errorf("cache clear: exit %d: %s", code, out)
	}
	if out, _, _ = runDspex(t, nil, "cache", "stats", "--path", cacheFile); !strings.Contains(out, "0 entries") {
		t.Errorf("stats after clear: %s", out)
	}

	corrupt := writeFile(t, "corrupt.db", "this is not a database")
	_, stderr, code = runDspex(t, nil, "run", "--program", prog, "--input", `{"q": "1"}`, "--cache", corrupt)
	if code != 0 || !strings.Contains(stderr, "warning: cache: disk tier unavailable") || !strings.Contains(stderr, "corrupt.db") {
		t.Errorf("corrupt cache: exit %d, stderr %s", code, stderr)
	}
	if b, _ := os.ReadFile(corrupt); string(b) != "this is not a database" {
		t.Error("the corrupt file was overwritten")
	}
}

func TestRunBadInput(t *testing.T) {
	url := startMockLM(t, "--fault", "badfields")
	good := writeFile(t, "p.yaml", "lm: {model: m, base_url: \""+url+"\"}\nadapter: chat\nprogram: {module: predict, signature: \"q -> n: int\"}\n")
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"bad signature", []string{"--program", writeFile(t, "b.yaml", "lm: {model: m}\nprogram:\n  module: predict\n  signature: \"q -> n: integer\"\n"), "--input", `{"q": "1"}`},
			1, `b.yaml:4: program.signature: signature "q -> n: integer": column 9: unknown type "integer"`},
		{"no input", []string{"--program", good}, 2, "give exactly one of --input and --inputs"},
		{"bad input json", []string{"--program", good, "--input", "{q: "}, 2, "--input"},
		{"bad jsonl", []string{"--program", good, "--inputs", writeFile(t, "d.jsonl", "{\"q\": \"1\"}\n\n{\"q\": \n")}, 1, "d.jsonl:3: "},
		{"broken LM output", []string{"--program", good, "--input", `{"q": "1"}`}, 1, "could not parse the LM response"},
		{"LM down", []string{"--program", writeFile(t, "down.yaml", "lm: {model: m, base_url: \"http://127.0.0.1:1/v1\"}\nprogram: {module: predict, signature: \"q -> a\"}\n"), "--input", `{"q": "1"}`},
			1, "lm: connection failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := runDspex(t, nil, append([]string{"run"}, c.args...)...)
			if code != c.wantCode || !strings.Contains(stderr, c.wantErr) {
				t.Errorf("exit %d (want %d), stderr:\n%s\nwant it to contain %q", code, c.wantCode, stderr, c.wantErr)
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("panicked: %s", stderr)
			}
		})
	}
}

func TestVersionAndMockHelp(t *testing.T) {
	out, _, code := runDspex(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "dspex ") {
		t.Errorf("version: %d %q", code, out)
	}
	out, _, _ = runDspex(t, nil, "mock-lm", "--help")
	if !strings.Contains(strings.ToLower(out), "simulat") {
		t.Errorf("mock-lm help does not say it is a simulator:\n%s", out)
	}
}

// dspex run --state loads a DSPy-format state file: the new instructions
// reach the prompt; a state file for another program is refused.
func TestRunWithState(t *testing.T) {
	script := writeFile(t, "script.yaml", "rules:\n  - match: Answer in French\n    match_any_message: true\n    fields: {a: Bonjour}\n")
	url := startMockLM(t, "--script", script)
	prog := writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"q -> a\"}\n")
	state := writeFile(t, "state.json", `{"traces": [], "train": [], "demos": [], "signature": {"instructions": "Answer in French.", "fields": [{"prefix": "Q:", "description": "${q}"}, {"prefix": "A:", "description": "${a}"}]}, "lm": null}`)
	out, stderr, code := runDspex(t, nil, "run", "--program", prog, "--input", `{"q": "hello"}`, "--state", state, "--no-cache")
	if code != 0 || !strings.Contains(out, `"Bonjour"`) {
		t.Errorf("with state: exit %d, out %s, stderr %s", code, out, stderr)
	}
	out, _, _ = runDspex(t, nil, "run", "--program", prog, "--input", `{"q": "hello"}`, "--no-cache")
	if strings.Contains(out, "Bonjour") {
		t.Error("the answer did not depend on the state's instructions")
	}
	bad := writeFile(t, "bad.json", `{"traces": [], "train": [], "demos": [], "signature": {"instructions": "x", "fields": [{"prefix": "Q:", "description": "${q}"}]}, "lm": null}`)
	_, stderr, code = runDspex(t, nil, "run", "--program", prog, "--input", `{"q": "hello"}`, "--state", bad)
	if code != 1 || !strings.Contains(stderr, "state file") || !strings.Contains(stderr, "has 1 fields") {
		t.Errorf("mismatched state: exit %d, stderr %s", code, stderr)
	}
}

// Values keep Python's semantics end to end: an --input dict keeps its key
// order and an integer every digit in the prompt, as do a program file's
// demos; a dict output keeps the LM's order; a demo key the signature
// lacks is accepted and named in a warning.
func TestRunKeepsKeyOrderAndBigIntegers(t *testing.T) {
	script := writeFile(t, "script.yaml", `rules:
  - match: zeta
    raw: "[[ ## result ## ]]\n{\"z\": 1, \"a\": 12345678901234567890}\n\n[[ ## completed ## ]]"
`)
	url := startMockLM(t, "--script", script)
	prog := writeFile(t, "program.yaml", `lm:
  model: dspex-sim
  base_url: ${TEST_LM_URL}
program:
  module: predict
  signature: "data: dict, n: int -> result: dict"
  demos:
    - {data: {b: 1, a: 2}, source: wiki, n: 98765432109876543210, result: {y: 1, x: 2}}
`)
	out, stderr, code := runDspex(t, []string{"TEST_LM_URL=" + url}, "run", "--program", prog, "--no-progress",
		"--log-level", "trace", "--log-json", "--input", `{"n": 12345678901234567890, "data": {"zeta": 1, "alpha": [{"y": 2, "x": 3}]}}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := `{"result": {"z": 1, "a": 12345678901234567890}}` + "\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	var logText strings.Builder
	var warned bool
	for line := range strings.SplitSeq(strings.TrimSpace(stderr), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		for _, v := range m {
			if s, ok := v.(string); ok {
				logText.WriteString(s + "\n")
			}
		}
		if strings.Contains(fmt.Sprint(m["@message"]), "demo has keys the signature lacks") && m["keys"] == "source" {
			warned = true
		}
	}
	for _, want := range []string{
		"[[ ## data ## ]]\n{\"b\": 1, \"a\": 2}\n\n[[ ## n ## ]]\n98765432109876543210",
		"[[ ## result ## ]]\n{\"y\": 1, \"x\": 2}",
		"[[ ## data ## ]]\n{\"zeta\": 1, \"alpha\": [{\"y\": 2, \"x\": 3}]}\n\n[[ ## n ## ]]\n12345678901234567890",
	} {
		if !strings.Contains(logText.String(), want) {
			t.Errorf("the logged prompt lacks %q:\n%s", want, stderr)
		}
	}
	if !warned {
		t.Errorf("no warning naming the demo key \"source\":\n%s", stderr)
	}
}
