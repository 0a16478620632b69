package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dspex/dspex/cmd/dspex/internal/dashboard"
	"github.com/dspex/dspex/core/trace"
)

// waitJS evaluates the JavaScript expression js in the page until it is
// true, failing the test after timeout.
func waitJS(t *testing.T, ctx context.Context, what, js string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ""`))
			t.Fatalf("waiting for %s: not true after %v (last error %v); the page says:\n%s", what, timeout, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func screenshot(t *testing.T, ctx context.Context, path string, width, height int) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height)), chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %dx%d: %s", width, height, path)
}

var dashboardRE = regexp.MustCompile(`dashboard of this run at (http://\S+)`)

// An optimization on the simulated LM serves its own dashboard
// (--dashboard): the run page updates live while it runs, and at the end
// shows the trial count and best score the trace store holds.
func TestOptimizeDashboardLive(t *testing.T) {
	ctx := browser(t, 1280, 800)
	url := startMockLM(t, "--dataset", filepath.Join(capitals, "train.jsonl"), "--dataset", filepath.Join(capitals, "dev.jsonl"),
		"--latency", "15ms")
	prog := program(t, url)
	db := filepath.Join(t.TempDir(), "traces.db")
	cmd := dspexCmd(t, "optimize", "--program", prog, "--train", filepath.Join(capitals, "train.jsonl"),
		"--val", filepath.Join(capitals, "dev.jsonl"), "--optimizer", "random-search", "--candidates", "5",
		"--concurrency", "4", "--out", filepath.Join(t.TempDir(), "state.json"), "--db", db, "--no-cache", "--no-progress",
		"--dashboard", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	pages := make(chan string, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := dashboardRE.FindStringSubmatch(sc.Text()); m != nil {
				pages <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	var page string
	select {
	case page = <-pages:
	case <-time.After(30 * time.Second):
		t.Fatalf("optimize did not print its dashboard address")
	}
	runID := page[strings.LastIndex(page, "/")+1:]

	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("open %s: %v", page, err)
	}
	waitJS(t, ctx, "the page to show the run", `document.querySelector("#run-state") !== null`, 20*time.Second)
	// Live: the page changes by server-sent events while the run goes on.
	waitJS(t, ctx, "a live update with scored trials",
		`Number(document.body.getAttribute("data-updates") || 0) >= 2 && document.querySelector("#trial-count") !== null`, 60*time.Second)
	first := text(t, ctx, "#trial-count")

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("optimize: %v\n%s", err, log.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("optimize did not finish\n%s", log.String())
	}
	// The dashboard sends the final state before it stops with its process.
	waitJS(t, ctx, "the stream's end", `document.body.getAttribute("data-ended") === "1"`, 15*time.Second)
	if got := text(t, ctx, "#run-state"); got != "ok" {
		t.Errorf("run state on the page %q; want ok", got)
	}
	pageTrials, pageBest := text(t, ctx, "#trial-count"), text(t, ctx, "#best-score")

	r, err := trace.OpenReader(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	trials, err := r.Trials(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	n, best := 0, -1.0
	for _, tr := range trials {
		if tr.Kind == trace.TrialEvaluated && tr.Score != nil {
			n++
			if !tr.Minibatch && *tr.Score > best {
				best = *tr.Score
			}
		}
	}
	if n < 3 {
		t.Fatalf("the store holds %d scored trials; the test needs several", n)
	}
	if pageTrials != strconv.Itoa(n) {
		t.Errorf("trial count on the page %q; the trace store has %d", pageTrials, n)
	}
	if want := fmt.Sprintf("%.2f", best); pageBest != want {
		t.Errorf("best score on the page %q; the trace store's best is %s", pageBest, want)
	}
	if first == pageTrials {
		t.Errorf("the trial count did not change while the page was open (%s at the first update and at the end)", first)
	}
	t.Logf("first live trial count %s, final %s, best %s", first, pageTrials, pageBest)
	screenshot(t, ctx, artifact(t, "dashboard-run-1280x800.png"), 1280, 800)
	if dir := os.Getenv(screenshotsEnv); dir != "" {
		screenshot(t, ctx, filepath.Join(dir, "dashboard-run-1280x800.png"), 1280, 800)
		screenshot(t, ctx, filepath.Join(dir, "dashboard-run-390x844.png"), 390, 844)
	}
}

// The payloads: each would set window.__pwned and the title if it ran.
const (
	scriptPayload  = `<script>window.__pwned = "script"; document.title = "pwned"</script>`
	onerrorPayload = `<img src=x onerror="window.__pwned='onerror'; document.title='pwned'">`
	jsURLPayload   = `<a id="jslink" href="javascript:window.__pwned='href';document.title='pwned'">click me</a>`
)

// A dashboard in this process follows runs that dspex processes write to
// the trace store: an evaluation whose predictions hold HTML and script
// shows them as text, and nothing in them runs; a run whose process is
// killed shows as died.
func TestOtherProcessRunsAndHostileOutput(t *testing.T) {
	ctx := browser(t, 1280, 800)
	script := writeFile(t, "script.yaml", fmt.Sprintf(`rules:
  - match: "France"
    raw: %q
  - match: ""
    fields: {answer: %q}
`, "no fields here "+onerrorPayload, scriptPayload+" "+onerrorPayload+" "+jsURLPayload))
	url := startMockLM(t, "--script", script, "--latency", "40ms")
	prog := program(t, url)
	var data strings.Builder
	for i := range 24 {
		q := fmt.Sprintf("Question %d about something?", i)
		if i == 3 {
			q = "What is the capital of France?"
		}
		fmt.Fprintf(&data, "{\"question\": %q, \"answer\": \"x\"}\n", q)
	}
	dev := writeFile(t, "dev.jsonl", data.String())
	db := filepath.Join(t.TempDir(), "traces.db")

	// The dashboard starts before the database exists.
	d, err := dashboard.New(dashboard.Config{DB: db, Addr: "127.0.0.1:0", Poll: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	base, err := d.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go d.Serve()
	t.Cleanup(func() { d.Close() })

	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the empty list", `document.querySelector("#note") !== null`, 10*time.Second)

	eval := dspexCmd(t, "eval", "--program", prog, "--data", dev, "--db", db, "--no-cache", "--concurrency", "1", "--no-progress", "--max-errors", "-1")
	out, err := eval.CombinedOutput()
	_ = out
	if err != nil && eval.ProcessState.ExitCode() != 1 { // failed examples make eval exit 1
		t.Fatalf("eval: %v\n%s", err, out)
	}
	// The list learns of the run from the file another process wrote.
	waitJS(t, ctx, "the run in the list", `document.querySelector("#runs tbody tr a") !== null`, 20*time.Second)
	// Follow the link (a live update may replace the list under a click).
	runHref, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#runs tbody tr a").getAttribute("href")`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(strings.TrimSuffix(base, "/")+runHref)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the evaluation's examples", `document.querySelector("#examples") !== null`, 20*time.Second)
	waitJS(t, ctx, "the run's end", `(document.querySelector("#run-state")||{}).textContent === "ok"`, 20*time.Second)

	// The payloads are on the page, as text.
	for _, p := range []string{"<script>window.__pwned", "onerror=", "javascript:window.__pwned"} {
		js := fmt.Sprintf(`document.querySelector("#examples").textContent.includes(%q)`, p)
		if found, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil || !found {
			t.Errorf("the examples table does not show %q as text (err %v)", p, err)
		}
	}
	// The raw output the adapter could not parse is listed with its error.
	waitJS(t, ctx, "the parse error's raw output", `Array.from(document.querySelectorAll("#errors pre")).some(p => p.textContent.includes("no fields here"))`, 10*time.Second)
	// An LM call's page shows the hostile response as text too.
	callHref, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#calls-table a").getAttribute("href")`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(strings.TrimSuffix(base, "/")+callHref)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the call's history", `document.querySelector("#history") !== null && document.querySelector("#history").textContent.includes("Response:")`, 10*time.Second)
	for _, p := range []string{"<script>", "onerror=", "javascript:"} {
		if !strings.Contains(text(t, ctx, "#history"), p) {
			t.Errorf("the call page does not show %q", p)
		}
	}
	// Nothing ran: no global set, title unchanged, no element made from
	// the payloads.
	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(window.__pwned)`))
	if err != nil {
		t.Fatal(err)
	}
	if pwned != "undefined" {
		t.Errorf("a payload ran: window.__pwned = %q", pwned)
	}
	now, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(now, "pwned") {
		t.Errorf("a payload changed the title to %q", now)
	}
	made, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main img, main script, #jslink, a[href^='javascript:']").length`))
	if err != nil {
		t.Fatal(err)
	}
	if made != 0 {
		t.Errorf("%d elements were made from the payloads", made)
	}
	screenshot(t, ctx, artifact(t, "dashboard-call-1280x800.png"), 1280, 800)

	// A run whose process is killed: running, then died.
	slowURL := startMockLM(t, "--latency", "2s")
	slow := dspexCmd(t, "eval", "--program", program(t, slowURL), "--data", dev, "--db", db, "--no-cache", "--concurrency", "1",
		"--no-progress", "--max-errors", "-1")
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Process.Kill(); _ = slow.Wait() })
	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the second run running", `document.querySelectorAll("#runs tbody tr").length === 2 && document.querySelector("#runs tbody tr .state").textContent === "running"`, 20*time.Second)
	if err := slow.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = slow.Wait()
	waitJS(t, ctx, "the killed run shown as died", `document.querySelector("#runs tbody tr .state").textContent === "died"`, 20*time.Second)
}
