package dashboard_test

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dspex serve --dashboard serves the run of the server: its page counts
// the requests' LM calls as they come.
func TestServeDashboard(t *testing.T) {
	url := startMockLM(t)
	prog := program(t, url)
	db := filepath.Join(t.TempDir(), "traces.db")
	cmd := dspexCmd(t, "serve", "--program", prog, "--addr", "127.0.0.1:0", "--db", db, "--no-cache", "--dashboard", "127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan string, 2)
	scan := func(r io.Reader, re string) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), re); i >= 0 {
				found <- strings.Fields(sc.Text()[i+len(re):])[0]
			}
		}
	}
	go scan(stdout, "listening on ")
	go scan(stderr, "dashboard of this run at ")
	var serveURL, page string
	for serveURL == "" || page == "" {
		select {
		case u := <-found:
			if strings.Contains(u, "/runs/") {
				page = u
			} else {
				serveURL = u
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not print its addresses")
		}
	}
	for range 3 {
		resp, err := http.Post(serveURL+"/v1/predict", "application/json", strings.NewReader(`{"question": "What is 2+2?"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(page)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatal("no CSP on the run page")
		}
		if resp.StatusCode == 200 && strings.Contains(string(body), `<span class="v" id="calls">3</span>`) &&
			strings.Contains(string(body), `id="run-state">running<`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run page of serve never showed 3 LM calls and running: %d\n%.3000s", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDashboardFlagsRefused(t *testing.T) {
	prog := program(t, "http://127.0.0.1:9/v1")
	data := writeFile(t, "d.jsonl", `{"question": "q", "answer": "a"}`+"\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--program", prog, "--data", data, "--no-traces", "--dashboard", "127.0.0.1:0"}, "--dashboard shows the run from its trace database"},
		{[]string{"eval", "--program", prog, "--data", data, "--db", filepath.Join(t.TempDir(), "t.db"), "--dashboard", "0.0.0.0:0"}, "needs a token"},
		{[]string{"dashboard", "--addr", "0.0.0.0:0", "--db", filepath.Join(t.TempDir(), "t.db")}, "needs a token"},
	} {
		out, err := dspexCmd(t, tc.args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("dspex %s: %v; want exit 2 saying %q:\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
}
