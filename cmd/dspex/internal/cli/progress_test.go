package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/plugins/mipro"
)

// publishProgress publishes Done 0..total for label, one second apart,
// with an error at the halfway mark and a running score.
func publishProgress(bus *event.Bus, label string, total int) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for done := 0; done <= total; done++ {
		score := float64(done) / float64(max(total, 1))
		info := &event.ProgressInfo{Label: label, Done: done, Total: total, Score: &score}
		if done >= total/2 {
			info.Errors = 2
		}
		bus.Publish(event.Event{Kind: event.Progress, Time: t0.Add(time.Duration(done) * time.Second), Data: info})
	}
}

func runProgress(t *testing.T, tty bool, publish func(*event.Bus)) string {
	t.Helper()
	var buf bytes.Buffer
	p := newProgress(&buf, tty)
	bus := event.NewBus()
	if err := p.Attach(bus); err != nil {
		t.Fatal(err)
	}
	publish(bus)
	// Close the progress display before the bus, as the CLI does: Close
	// drains what is buffered.
	p.Close()
	bus.Close()
	return buf.String()
}

func TestProgressPlainLines(t *testing.T) {
	// Fed to the handler directly: through the bus, DropOldest may drop an
	// exact 10% mark when the publisher outruns the handler.
	var buf bytes.Buffer
	p := newProgress(&buf, false)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for done := 0; done <= 100; done++ {
		score := 0.5
		info := &event.ProgressInfo{Label: "eval", Done: done, Total: 100, Score: &score}
		if done >= 50 {
			info.Errors = 2
		}
		p.handle(event.Event{Kind: event.Progress, Time: t0.Add(time.Duration(done) * time.Second), Data: info})
	}
	p.Close()
	out := buf.String()
	if strings.Contains(out, "\r") {
		t.Errorf("plain output has \\r: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{
		"eval [....................] 0/100 score 0.50",
		"eval [##..................] 10/100 score 0.50 eta 1m30s",
		"eval [####................] 20/100 score 0.50 eta 1m20s",
		"eval [######..............] 30/100 score 0.50 eta 1m10s",
		"eval [########............] 40/100 score 0.50 eta 1m0s",
		"eval [##########..........] 50/100 (2 errors) score 0.50 eta 50s",
		"eval [############........] 60/100 (2 errors) score 0.50 eta 40s",
		"eval [##############......] 70/100 (2 errors) score 0.50 eta 30s",
		"eval [################....] 80/100 (2 errors) score 0.50 eta 20s",
		"eval [##################..] 90/100 (2 errors) score 0.50 eta 10s",
		"eval [####################] 100/100 (2 errors) score 0.50",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("plain output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
}

func TestProgressPlainShowsLastStateOnClose(t *testing.T) {
	out := runProgress(t, false, func(b *event.Bus) {
		for _, done := range []int{0, 47} {
			b.Publish(event.Event{Kind: event.Progress, Time: time.Now(), Data: &event.ProgressInfo{Label: "x", Done: done, Total: 100}})
		}
	})
	if !strings.HasSuffix(out, "x [#########...........] 47/100\n") {
		t.Errorf("output %q does not end with the last state", out)
	}
}

func TestProgressTTY(t *testing.T) {
	out := runProgress(t, true, func(b *event.Bus) { publishProgress(b, "optimize", 30) })
	if n := strings.Count(out, "\r"); n < 2 {
		t.Errorf("%d redraws, want several: %q", n, out)
	}
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("terminal output should be one line ended by Close: %q", out)
	}
	// A line shorter than the one before is padded with spaces.
	last := strings.TrimRight(out[strings.LastIndex(out, "\r")+1:], " \n") + "\n"
	if want := "optimize [####################] 30/30 (2 errors) score 1.00\n"; last != want {
		t.Errorf("final state %q, want %q", last, want)
	}
}

func TestProgressTTYNewLabelStartsNewLine(t *testing.T) {
	out := runProgress(t, true, func(b *event.Bus) {
		publishProgress(b, "first", 3)
		publishProgress(b, "second", 3)
	})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "first") || !strings.Contains(lines[1], "second") {
		t.Errorf("want a line per label, got %q", out)
	}
}

func TestProgressLine(t *testing.T) {
	score := 0.61
	tests := []struct {
		name string
		info event.ProgressInfo
		eta  time.Duration
		want string
	}{
		{"full", event.ProgressInfo{Label: "label", Done: 42, Total: 100, Errors: 2, Score: &score}, 3 * time.Second,
			"label [########............] 42/100 (2 errors) score 0.61 eta 3s"},
		{"one error", event.ProgressInfo{Label: "l", Done: 1, Total: 2, Errors: 1}, 0, "l [##########..........] 1/2 (1 error)"},
		{"unknown total", event.ProgressInfo{Done: 7}, 0, "progress 7 done"},
		{"overshoot", event.ProgressInfo{Label: "l", Done: 5, Total: 4}, 0, "l [####################] 5/4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := progressLine(&tt.info, tt.eta); got != tt.want {
				t.Errorf("progressLine = %q, want %q", got, tt.want)
			}
		})
	}
}

// stuckWriter blocks every write until released.
type stuckWriter struct {
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	return len(p), nil
}

func TestProgressNeverBlocksPublisher(t *testing.T) {
	for _, tty := range []bool{false, true} {
		w := &stuckWriter{release: make(chan struct{})}
		p := newProgress(w, tty)
		bus := event.NewBus()
		if err := p.Attach(bus); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		publishProgress(bus, "burst", 10*progressBuffer)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("tty=%v: publishing to a stuck display took %s", tty, d)
		}
		close(w.release)
		p.Close()
		bus.Close()
		if w.n == 0 {
			t.Errorf("tty=%v: nothing written once the writer was released", tty)
		}
	}
}

func TestProgressAttach(t *testing.T) {
	p := newProgress(&bytes.Buffer{}, false)
	bus := event.NewBus()
	defer bus.Close()
	if err := p.Attach(bus); err != nil {
		t.Fatal(err)
	}
	if err := p.Attach(bus); err == nil {
		t.Error("second Attach succeeded")
	}
	p.Close()
	p.Close()
	if err := p.Attach(bus); err == nil {
		t.Error("Attach after Close succeeded")
	}
}

func TestProgressIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if isTerminal(nil) {
		t.Error("nil is a terminal")
	}
}

// candidateEvent is an evaluated candidate, as Trials publishes it.
func candidateEvent(id string, demos int, score, best float64) event.Event {
	return event.Event{Kind: event.OptimizerTrial, Time: time.Now(), Data: &event.OptimizerTrialInfo{
		Optimizer: "x", Candidate: map[string]any{"id": id, "predictors": map[string]any{"self": map[string]any{"demos": demos, "instructions": "i"}}},
		Score: &score, BestScore: &best,
	}}
}

// With candidate lines (dspex optimize), each evaluated candidate is one
// permanent line; the bars inside it, a bootstrap that stops short of its
// total among them, are not shown in plain output and are erased on a
// terminal.
func TestProgressCandidateLines(t *testing.T) {
	// Fed to the handlers directly, in the order the work publishes them
	// (through the bus, two subscriptions may deliver in either order).
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	bar := func(p *progress, label string, dones []int, total int) {
		for i, done := range dones {
			p.handle(event.Event{Kind: event.Progress, Time: t0.Add(time.Duration(i) * time.Second), Data: &event.ProgressInfo{Label: label, Done: done, Total: total}})
		}
	}
	run := func(tty bool) string {
		var buf bytes.Buffer
		p := newProgress(&buf, tty)
		p.showCandidates(func(id string) string { return "candidate " + id }, 2)
		p.handleCandidate(event.Event{Kind: event.OptimizerTrial, Data: &event.OptimizerTrialInfo{Candidate: map[string]any{"id": "proposal"}}})
		bar(p, "eval", []int{0, 2, 5}, 5)
		p.handleCandidate(candidateEvent("a", 0, 34.85, 34.85))
		bar(p, "bootstrap", []int{0, 2}, 66)
		bar(p, "eval", []int{0, 3}, 5)
		bar(p, "eval", []int{5}, 5)
		p.handleCandidate(candidateEvent("b", 16, 77.27, 77.27))
		p.Close()
		return buf.String()
	}
	want := []string{
		"candidate 1/2: candidate a (0 demos): score 34.85, best so far 34.85",
		"candidate 2/2: candidate b (16 demos): score 77.27, best so far 77.27",
	}
	if out := run(false); out != strings.Join(want, "\n")+"\n" {
		t.Errorf("plain output:\n%s\nwant only the candidate lines:\n%s", out, strings.Join(want, "\n"))
	}
	out := run(true)
	// What stays on a terminal: on each line, only the text after its last
	// \r (each redraw replaces the one before); Close leaves the cursor on
	// an empty line.
	var screen []string
	for _, line := range strings.Split(out, "\n") {
		if s := strings.TrimRight(line[strings.LastIndex(line, "\r")+1:], " "); s != "" {
			screen = append(screen, s)
		}
	}
	if strings.Join(screen, "\n") != strings.Join(want, "\n") {
		t.Errorf("terminal shows:\n%s\nwant:\n%s\n(raw %q)", strings.Join(screen, "\n"), strings.Join(want, "\n"), out)
	}
	if !strings.Contains(out, "eval [") || !strings.Contains(out, "bootstrap [") {
		t.Errorf("terminal output never showed the bars: %q", out)
	}
	if strings.Count(out, "\n") != 2 {
		t.Errorf("terminal output has %d line ends, want one per candidate: %q", strings.Count(out, "\n"), out)
	}
}

// MIPROv2's trials are lines of their own: the baseline, each sampled
// trial counted against the total, each full evaluation, with the best
// full score and the LM calls so far (not for trials restored from a
// resumed run, which made none).
func TestProgressTrialLines(t *testing.T) {
	trial := func(kind string, size int, mini bool, score, best float64, resumed bool) event.Event {
		return event.Event{Kind: event.OptimizerTrial, Time: time.Now(), Data: &event.OptimizerTrialInfo{
			Optimizer: mipro.Name, Candidate: map[string]any{"id": "trial", "kind": kind, "batch_size": size, "resumed": resumed},
			Score: &score, BestScore: &best, Minibatch: mini,
		}}
	}
	var buf bytes.Buffer
	p := newProgress(&buf, false)
	p.showCandidates(describeCandidate, 2)
	calls := 0
	p.showTrials(10, func() int { calls += 35; return calls })
	p.handleCandidate(candidateEvent("baseline", 0, 34.85, 34.85))
	p.handleCandidate(trial("baseline", 52, false, 32.69, 32.69, true))
	p.handleCandidate(trial("sampled", 35, true, 57.14, 32.69, false))
	p.handleCandidate(trial("sampled", 52, false, 40, 40, false))
	p.handleCandidate(trial("full_eval", 52, false, 57.69, 57.69, false))
	p.Close()
	want := []string{
		"candidate 1/2: the program as given (0 demos): score 34.85, best so far 34.85",
		"trial 0 (the program as given, all 52 examples): score 32.69, best full score so far 32.69 (restored from the run resumed)",
		"trial 1/10 (minibatch of 35): score 57.14, best full score so far 32.69; 35 LM calls",
		"trial 2/10 (all 52 examples): score 40.00, best full score so far 40.00; 70 LM calls",
		"full evaluation after trial 2/10 (the best-averaging candidate, all 52 examples): score 57.69, best full score so far 57.69; 105 LM calls",
	}
	if diff := cmp.Diff(strings.Join(want, "\n")+"\n", buf.String()); diff != "" {
		t.Errorf("trial lines (-want +got):\n%s", diff)
	}
}
