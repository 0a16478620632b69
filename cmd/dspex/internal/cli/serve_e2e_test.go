package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/core/program"
	"github.com/dspex/dspex/core/programfile"
	"github.com/dspex/dspex/core/trace"
)

// serveProc is a `dspex serve` process.
type serveProc struct {
	url    string
	cmd    *exec.Cmd
	stderr *bytes.Buffer // read only after wait
	waited chan struct{}
	code   int
}

// startServe runs `dspex serve --addr 127.0.0.1:0 ARGS...` and waits for its
// listening line. If the process exits first, it returns nil and the
// process's exit code and output. The process gets SIGTERM at cleanup.
func startServe(t *testing.T, args ...string) (*serveProc, int, string, string) {
	t.Helper()
	cmd := exec.Command(dspexBin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "XDG_STATE_HOME="+t.TempDir(), "DSPEX_DB=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, stderr: &bytes.Buffer{}, waited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	var allOut strings.Builder
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			allOut.WriteString(sc.Text() + "\n")
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		<-read // Wait must not close the pipe before it is read
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.waited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.waited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.waited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.waited
		}
	})
	select {
	case p.url = <-urls:
		return p, 0, "", ""
	case <-p.waited:
		return nil, p.code, allOut.String(), p.stderr.String()
	case <-time.After(30 * time.Second):
		t.Fatal("dspex serve did not report its address")
	}
	return nil, 0, "", ""
}

// stop sends SIGTERM and returns the exit code and standard error.
func (p *serveProc) stop(t *testing.T) (int, string) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.waited:
	case <-time.After(60 * time.Second):
		t.Fatal("dspex serve did not exit within 60s of SIGTERM")
	}
	return p.code, p.stderr.String()
}

func post(t *testing.T, client *http.Client, url, body string) (int, map[string]any) {
	t.Helper()
	res, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatalf("POST %s: status %d, body not JSON: %v", url, res.StatusCode, err)
	}
	return res.StatusCode, m
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode
}

// dspex serve as a real process: a prediction, the program description, a
// bad request, then SIGTERM: exit 0, and the trace database holds the
// serve run with one request event per request, each the parent of its
// module span.
func TestServeEndToEnd(t *testing.T) {
	script := writeFile(t, "script.yaml", "rules:\n  - match: capital of France\n    fields: {reasoning: \"Paris is the capital.\", answer: Paris}\n")
	lmURL := startMockLM(t, "--script", script)
	prog := writeFile(t, "program.yaml", "lm: {model: dspex-sim, base_url: \""+lmURL+"\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"program: {module: chain_of_thought, signature: \"question -> answer\"}\n")
	db := filepath.Join(t.TempDir(), "traces.db")
	p, code, _, stderr := startServe(t, "--program", prog, "--db", db, "--no-cache")
	if p == nil {
		t.Fatalf("dspex serve exited %d: %s", code, stderr)
	}
	client := &http.Client{Timeout: 30 * time.Second}

	status, got := post(t, client, p.url+"/v1/predict", `{"question": "What is the capital of France?"}`)
	if status != 200 || got["answer"] != "Paris" || got["reasoning"] != "Paris is the capital." {
		t.Errorf("predict: %d %v", status, got)
	}
	status, got = post(t, client, p.url+"/v1/predict", `{"question": "x", "context": "y"}`)
	if e, _ := got["error"].(map[string]any); status != 400 || e["type"] != "invalid_request" || !strings.Contains(fmt.Sprint(e["message"]), `"context"`) {
		t.Errorf("bad request: %d %v", status, got)
	}
	var info struct {
		Module string `json:"module"`
		Inputs []struct {
			Name string `json:"name"`
		} `json:"inputs"`
	}
	if status := getJSON(t, p.url+"/v1/program", &info); status != 200 || info.Module != "chain_of_thought" || len(info.Inputs) != 1 || info.Inputs[0].Name != "question" {
		t.Errorf("program: %d %+v", status, info)
	}
	var health map[string]any
	if status := getJSON(t, p.url+"/healthz", &health); status != 200 || health["status"] != "ok" {
		t.Errorf("healthz: %d %v", status, health)
	}

	code, stderr = p.stop(t)
	if code != 0 {
		t.Fatalf("exit %d after SIGTERM: %s", code, stderr)
	}
	if !strings.Contains(stderr, "1 predictions admitted, 0 refused") {
		t.Errorf("stderr:\n%s", stderr)
	}

	r, err := trace.OpenReader(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runs, err := r.Runs(context.Background(), trace.ListOptions{})
	if err != nil || len(runs) != 1 || runs[0].Name != "serve" || runs[0].Status != "ok" {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	evs, err := r.Events(context.Background(), runs[0].ID, "http.request")
	if err != nil {
		t.Fatal(err)
	}
	reqSpans := map[string]bool{}
	for _, ev := range evs {
		reqSpans[ev.SpanID] = true
	}
	if len(evs) != 2 { // predict, program; healthy probes are not traced
		t.Errorf("%d request events, want 2", len(evs))
	}
	// The bad predict was refused before the program ran: it is counted.
	if refused, err := r.Events(context.Background(), runs[0].ID, trace.EventHTTPRefused); err != nil || len(refused) != 1 ||
		!strings.Contains(string(refused[0].Data), `"count":1`) {
		t.Errorf("refusal counts %+v, %v; want one counting the bad request", refused, err)
	}
	spans, err := r.Spans(context.Background(), runs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	modules := 0
	for _, s := range spans {
		if s.Kind == "module" && s.Name == "ChainOfThought" {
			modules++
			if !reqSpans[s.ParentID] {
				t.Errorf("module span %s is not under a request span", s.ID)
			}
		}
	}
	if modules != 1 {
		t.Errorf("%d ChainOfThought spans, want 1", modules)
	}
}

// --state loads an optimized program's instructions: the simulator sees
// them in the prompt, and /v1/program shows them. A bad state file stops
// the server before it listens.
func TestServeState(t *testing.T) {
	script := writeFile(t, "script.yaml", "rules:\n  - match: like a pirate\n    match_any_message: true\n    fields: {answer: \"Arr, Paris\"}\n")
	lmURL := startMockLM(t, "--script", script)
	progFile := writeFile(t, "program.yaml", "lm: {model: dspex-sim, base_url: \""+lmURL+"\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"program: {module: chain_of_thought, signature: \"question -> answer\"}\n")
	spec, err := programfile.LoadFile(progFile)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := spec.NewProgram()
	if err != nil {
		t.Fatal(err)
	}
	pred := prog.NamedPredictors()[0].Predictor
	pred.SetSignature(pred.Signature().WithInstructions("Answer like a pirate."))
	state := filepath.Join(t.TempDir(), "state.json")
	if err := program.SaveStateFile(state, prog); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for _, c := range []struct {
		name, state, answer, instructions string
	}{
		{"without state", "", "", "Given the fields `question`, produce the fields `answer`."},
		{"with state", state, "Arr, Paris", "Answer like a pirate."},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"--program", progFile, "--no-traces", "--no-cache"}
			if c.state != "" {
				args = append(args, "--state", c.state)
			}
			p, code, _, stderr := startServe(t, args...)
			if p == nil {
				t.Fatalf("dspex serve exited %d: %s", code, stderr)
			}
			status, got := post(t, client, p.url+"/v1/predict", `{"question": "What is the capital of France?"}`)
			if status != 200 || (c.answer != "") != (got["answer"] == c.answer) || (c.answer == "" && got["answer"] == "Arr, Paris") {
				t.Errorf("predict: %d %v", status, got)
			}
			var info struct {
				Instructions string `json:"instructions"`
				Predictors   []struct {
					Instructions string `json:"instructions"`
				} `json:"predictors"`
			}
			getJSON(t, p.url+"/v1/program", &info)
			if info.Instructions != c.instructions || len(info.Predictors) != 1 || info.Predictors[0].Instructions != c.instructions {
				t.Errorf("program = %+v, want instructions %q", info, c.instructions)
			}
			if code, stderr := p.stop(t); code != 0 {
				t.Errorf("exit %d: %s", code, stderr)
			}
		})
	}
	t.Run("bad state file", func(t *testing.T) {
		bad := writeFile(t, "bad.json", `{"generate": {"demos": []}}`)
		p, code, stdout, stderr := startServe(t, "--program", progFile, "--no-traces", "--no-cache", "--state", bad)
		if p != nil {
			t.Fatal("dspex serve started with a bad state file")
		}
		if code != 1 || !strings.Contains(stderr, "state file "+bad) || strings.Contains(stdout, "listening") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
}

// SIGTERM while 20 requests run or wait against a slow simulator: every
// accepted request gets its answer and the process exits 0. Requests sent
// after the signal either cannot connect or are answered (200, or 429 while
// the queue is full); none hang.
func TestServeSIGTERMDuringLoad(t *testing.T) {
	const n = 20
	lmURL := startMockLM(t, "--latency", "300ms")
	prog := writeFile(t, "program.yaml", "lm: {model: dspex-sim, base_url: \""+lmURL+"\", api_key_env: DSPEX_TEST_UNSET}\n"+
		"program: {module: predict, signature: \"question -> answer\"}\n")
	p, code, _, stderr := startServe(t, "--program", prog, "--no-cache", "--max-concurrent", "4", "--max-queue", "16")
	if p == nil {
		t.Fatalf("dspex serve exited %d: %s", code, stderr)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	type result struct {
		status int
		err    error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			res, err := client.Post(p.url+"/v1/predict", "application/json", strings.NewReader(fmt.Sprintf(`{"question": "q%d"}`, i)))
			if err != nil {
				results <- result{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			results <- result{status: res.StatusCode}
		}()
	}
	// Wait until the server holds all of them: 4 running, 16 queued.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var h struct{ Running, Waiting int }
		if getJSON(t, p.url+"/healthz", &h); h.Running+h.Waiting == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the requests were not all accepted within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Late requests on new connections.
	late := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 20 * time.Millisecond)
			res, err := late.Post(p.url+"/v1/predict", "application/json", strings.NewReader(`{"question": "late"}`))
			if err != nil {
				return // not accepted
			}
			res.Body.Close()
			if res.StatusCode != 200 && res.StatusCode != 429 {
				t.Errorf("late request accepted but answered %d", res.StatusCode)
			}
		})
	}
	for range n {
		if r := <-results; r.err != nil || r.status != 200 {
			t.Errorf("accepted request lost on SIGTERM: status %d, err %v", r.status, r.err)
		}
	}
	wg.Wait()
	select {
	case <-p.waited:
	case <-time.After(60 * time.Second):
		t.Fatal("dspex serve did not exit after SIGTERM")
	}
	if p.code != 0 {
		t.Errorf("exit %d after SIGTERM: %s", p.code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "dspex serve: stopped; ") {
		t.Errorf("stderr:\n%s", p.stderr.String())
	}
}

func TestServeBadFlags(t *testing.T) {
	prog := writeFile(t, "p.yaml", "lm: {model: m, base_url: \"http://127.0.0.1:1/v1\"}\nprogram: {module: predict, signature: \"q -> a\"}\n")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve"}, 2, `required flag(s) "program" not set`},
		{[]string{"serve", "--program", prog, "--max-concurrent", "0"}, 2, "--max-concurrent must be at least 1"},
		{[]string{"serve", "--program", prog, "--max-queue", "-1"}, 2, "--max-queue must not be negative"},
		{[]string{"serve", "--program", prog, "--timeout", "0s"}, 2, "--timeout must be positive"},
		{[]string{"serve", "--program", prog, "--addr", "256.0.0.1:80", "--no-traces"}, 1, "serve: listen on 256.0.0.1:80"},
		{[]string{"serve", "--program", prog, "--log-level", "loud", "--no-traces"}, 2, `--log-level "loud": want trace, debug, info, warn, error or off`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[1:], " "), func(t *testing.T) {
			_, stderr, code := runDspex(t, nil, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d (want %d), stderr %q, want it to contain %q", code, c.code, stderr, c.want)
			}
		})
	}
}
