package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/plugins/finetune"
	"github.com/dspex/dspex/plugins/mipro"
)

const (
	// progressBuffer is the progress subscription's buffer. Only the latest
	// state matters, so a small one that drops the oldest is enough.
	progressBuffer = 64
	// progressBarWidth is the number of cells in the bar.
	progressBarWidth = 20
	// progressRedraw is the least time, by the events' clock, between two
	// redraws of the terminal line; the first and the last state are always
	// drawn.
	progressRedraw = 100 * time.Millisecond
	// candidateBuffer is the buffer of the candidate-line subscription,
	// which blocks rather than drop a line: candidates are few.
	candidateBuffer = 16
)

// progress shows event.Progress events: on a terminal as one line redrawn
// in place with '\r', elsewhere as plain lines at 0%, every 10% and 100%.
// It subscribes with DropOldest, so a slow terminal never slows the work.
//
// With showCandidates (dspex optimize), each evaluated candidate is one
// permanent line instead: the bars of the evaluations and bootstraps
// inside it are transient on a terminal (erased when done, as a bootstrap
// that found its demos ends short of its total) and not shown elsewhere.
// Its methods are safe for concurrent use.
type progress struct {
	w   io.Writer
	tty bool

	// describe, when set, turns on candidate lines; it says what a
	// candidate id is. candTotal is how many candidates are expected (0:
	// unknown).
	describe  func(id string) string
	candTotal int
	candSub   *event.Subscription
	// jobSub shows the fine-tuning jobs' lines (jobs).
	jobSub *event.Subscription
	jobs   jobLines
	candN  int
	// trialTotal is how many sampled trials MIPROv2 runs; trialN how many
	// have been shown; calls, when set, counts the LM calls so far.
	trialTotal int
	trialN     int
	calls      func() int

	mu       sync.Mutex
	sub      *event.Subscription
	closed   bool
	bar      progressBar
	last     *event.ProgressInfo // latest state of the current bar
	lastTime time.Time           // its event's time
	drawn    bool                // whether last is on screen
	lineLen  int                 // terminal: length of the line on screen
}

// progressBar is what one label's progress started from, for the eta.
type progressBar struct {
	label     string
	start     time.Time
	startDone int
	lastDraw  time.Time
	lastStep  int // plain output: last step printed, -1 for none
}

// newProgress returns a progress display writing to w; isTTY selects the
// redrawn line (see isTerminal). It shows nothing until attached.
func newProgress(w io.Writer, isTTY bool) *progress {
	return &progress{w: w, tty: isTTY}
}

// Attach subscribes p to bus's Progress events. A progress display shows
// one bus; attaching twice is an error.
func (p *progress) Attach(bus *event.Bus) error {
	if bus == nil {
		return errors.New("progress: attach to nil bus")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("progress: attach after close")
	}
	if p.sub != nil {
		return errors.New("progress: already attached")
	}
	sub, err := bus.Subscribe(event.SubscribeOptions{
		Name: "progress", Kinds: []event.Kind{event.Progress}, Buffer: progressBuffer, Policy: event.DropOldest,
	}, p.handle)
	if err != nil {
		return fmt.Errorf("progress: subscribe: %w", err)
	}
	p.sub = sub
	js, err := bus.Subscribe(event.SubscribeOptions{
		Name: "progress-jobs", Kinds: []event.Kind{finetune.JobKind, finetune.JobEventKind}, Buffer: candidateBuffer, Policy: event.Block,
	}, p.handleJob)
	if err != nil {
		sub.Close()
		p.sub = nil
		return fmt.Errorf("progress: subscribe: %w", err)
	}
	p.jobSub = js
	if p.describe != nil {
		cs, err := bus.Subscribe(event.SubscribeOptions{
			Name: "progress-candidates", Kinds: []event.Kind{event.OptimizerTrial}, Buffer: candidateBuffer, Policy: event.Block,
		}, p.handleCandidate)
		if err != nil {
			sub.Close()
			p.sub = nil
			return fmt.Errorf("progress: subscribe: %w", err)
		}
		p.candSub = cs
	}
	return nil
}

// showCandidates turns on candidate lines (see progress); call it before
// Attach. describe says what a candidate id is; total is how many are
// expected, 0 when unknown.
func (p *progress) showCandidates(describe func(id string) string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.describe, p.candTotal = describe, total
}

// showTrials sets what MIPROv2's trial lines show: total sampled trials
// and, with calls, the LM calls made so far.
func (p *progress) showTrials(total int, calls func() int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trialTotal, p.calls = total, calls
}

// handleCandidate prints a line for each evaluated candidate:
//
//	candidate 3/10: demos bootstrapped in training-set order (4 demos): score 74.24, best so far 74.24
func (p *progress) handleCandidate(ev event.Event) {
	info, ok := ev.Data.(*event.OptimizerTrialInfo)
	if !ok || info.Score == nil {
		return // a proposal, scored later
	}
	if kind, ok := info.Candidate["kind"].(string); ok && info.Optimizer == mipro.Name {
		p.handleTrial(info, kind)
		return
	}
	id, _ := info.Candidate["id"].(string)
	demos := 0
	if preds, ok := info.Candidate["predictors"].(map[string]any); ok {
		for _, v := range preds {
			if m, ok := v.(map[string]any); ok {
				if n, ok := m["demos"].(int); ok {
					demos += n
				}
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.candN++
	var b strings.Builder
	fmt.Fprintf(&b, "candidate %d", p.candN)
	if p.candTotal > 0 {
		fmt.Fprintf(&b, "/%d", p.candTotal)
	}
	fmt.Fprintf(&b, ": %s (%s): score %.2f", p.describe(id), countNoun(int64(demos), "demo", "demos"), *info.Score)
	if info.BestScore != nil {
		fmt.Fprintf(&b, ", best so far %.2f", *info.BestScore)
	}
	if resumed, _ := info.Candidate["resumed"].(bool); resumed {
		b.WriteString(" (restored from the run resumed)")
	}
	p.printLine(b.String())
}

// printLine prints a permanent line above the bar.
func (p *progress) printLine(line string) {
	if p.tty && p.drawnLine() {
		p.clearLine()
	}
	fmt.Fprintln(p.w, line)
	// The candidate's own bars are done; a bar already under way (events
	// of two subscriptions may arrive in either order) is drawn again.
	if p.tty && p.last != nil && !finished(p.last) {
		p.draw()
	}
}

// handleTrial prints a line for each of MIPROv2's trials:
//
//	trial 7/20 (minibatch of 35): score 62.86, best full score so far 60.00; 412 LM calls
func (p *progress) handleTrial(info *event.OptimizerTrialInfo, kind string) {
	size, _ := info.Candidate["batch_size"].(int)
	p.mu.Lock()
	defer p.mu.Unlock()
	total := ""
	if p.trialTotal > 0 {
		total = fmt.Sprintf("/%d", p.trialTotal)
	}
	var b strings.Builder
	switch mipro.TrialKind(kind) {
	case mipro.Baseline:
		fmt.Fprintf(&b, "trial 0 (the program as given, all %d examples)", size)
	case mipro.FullEval:
		fmt.Fprintf(&b, "full evaluation after trial %d%s (the best-averaging candidate, all %d examples)", p.trialN, total, size)
	default:
		p.trialN++
		scope := fmt.Sprintf("all %d examples", size)
		if info.Minibatch {
			scope = fmt.Sprintf("minibatch of %d", size)
		}
		fmt.Fprintf(&b, "trial %d%s (%s)", p.trialN, total, scope)
	}
	fmt.Fprintf(&b, ": score %.2f", *info.Score)
	if info.BestScore != nil {
		fmt.Fprintf(&b, ", best full score so far %.2f", *info.BestScore)
	}
	if resumed, _ := info.Candidate["resumed"].(bool); resumed {
		b.WriteString(" (restored from the run resumed)")
	} else if p.calls != nil {
		fmt.Fprintf(&b, "; %s", countNoun(int64(p.calls()), "LM call", "LM calls"))
	}
	p.printLine(b.String())
}

// drawnLine reports whether a bar's line is on the terminal.
func (p *progress) drawnLine() bool { return p.lineLen > 0 }

// clearLine wipes the terminal line and returns to its start.
func (p *progress) clearLine() {
	fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.lineLen)+"\r")
	p.lineLen = 0
}

// Close unsubscribes, shows the last state if it was not shown, and ends
// the terminal line. Later calls do nothing.
func (p *progress) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	sub, candSub, jobSub := p.sub, p.candSub, p.jobSub
	p.mu.Unlock()
	// The handlers take p.mu: unsubscribe without it.
	if sub != nil {
		sub.Close()
	}
	if jobSub != nil {
		jobSub.Close()
	}
	if candSub != nil {
		candSub.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endBar()
}

// handleJob prints a line for each state change of a fine-tuning job and
// each of its messages (see jobLines).
func (p *progress) handleJob(ev event.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if line := p.jobs.line(ev.Data); line != "" {
		p.printLine(line)
	}
}

func (p *progress) handle(ev event.Event) {
	info, ok := ev.Data.(*event.ProgressInfo)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil || info.Label != p.bar.label || info.Done < p.last.Done {
		p.endBar()
		p.bar = progressBar{label: info.Label, start: ev.Time, startDone: info.Done, lastStep: -1}
	}
	p.last, p.lastTime, p.drawn = info, ev.Time, false
	if p.describe != nil && !p.tty {
		return // the candidate lines say it
	}
	if p.tty {
		if p.bar.lastDraw.IsZero() || ev.Time.Sub(p.bar.lastDraw) >= progressRedraw || finished(info) {
			p.draw()
		}
		return
	}
	if step := progressStep(info); step > p.bar.lastStep {
		p.bar.lastStep = step
		p.draw()
	}
}

// endBar finishes the current bar: its last state shown, and on a terminal
// the line ended.
func (p *progress) endBar() {
	if p.last == nil {
		return
	}
	if p.describe != nil {
		// Transient: the candidate lines are what stays.
		if p.tty && p.drawnLine() {
			p.clearLine()
		}
		p.last = nil
		return
	}
	if !p.drawn {
		p.draw()
	}
	if p.tty {
		fmt.Fprint(p.w, "\n")
	}
	p.last, p.lineLen = nil, 0
}

// draw shows p.last. Write errors are ignored: progress is best effort.
func (p *progress) draw() {
	line := progressLine(p.last, p.eta())
	p.drawn = true
	p.bar.lastDraw = p.lastTime
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	// Pad with spaces to wipe what is left of a longer previous line.
	pad := max(p.lineLen-len(line), 0)
	fmt.Fprint(p.w, "\r"+line+strings.Repeat(" ", pad))
	p.lineLen = len(line)
}

// eta estimates the time left from the rate since the bar started; zero
// when it cannot tell.
func (p *progress) eta() time.Duration {
	info := p.last
	done := info.Done - p.bar.startDone
	elapsed := p.lastTime.Sub(p.bar.start)
	if info.Total <= 0 || info.Done >= info.Total || done <= 0 || elapsed <= 0 {
		return 0
	}
	return time.Duration(float64(elapsed) / float64(done) * float64(info.Total-info.Done))
}

// finished reports whether info is a bar's final state.
func finished(info *event.ProgressInfo) bool {
	return info.Total > 0 && info.Done >= info.Total
}

// progressStep is the step of plain output info falls in: tenths of the
// total, or hundreds of items when the total is unknown.
func progressStep(info *event.ProgressInfo) int {
	if info.Total <= 0 {
		return info.Done / 100
	}
	return min(info.Done, info.Total) * 10 / info.Total
}

// progressLine renders one state:
//
//	label [#####...............] 42/100 (2 errors) score 0.61 eta 3s
func progressLine(info *event.ProgressInfo, eta time.Duration) string {
	var b strings.Builder
	label := info.Label
	if label == "" {
		label = "progress"
	}
	b.WriteString(label)
	if info.Total > 0 {
		filled := min(max(info.Done, 0), info.Total) * progressBarWidth / info.Total
		fmt.Fprintf(&b, " [%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", progressBarWidth-filled), info.Done, info.Total)
	} else {
		fmt.Fprintf(&b, " %d done", info.Done)
	}
	switch info.Errors {
	case 0:
	case 1:
		b.WriteString(" (1 error)")
	default:
		fmt.Fprintf(&b, " (%d errors)", info.Errors)
	}
	if info.Score != nil {
		fmt.Fprintf(&b, " score %.2f", *info.Score)
	}
	if eta = eta.Round(time.Second); eta > 0 {
		fmt.Fprintf(&b, " eta %s", eta)
	}
	return b.String()
}

// isTerminal reports whether f is a character device (a terminal, in
// practice), where progress redraws its line in place.
func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
