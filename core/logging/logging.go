// Package logging writes DSPEx's events as log lines. It is a subscriber of
// the event bus (package event) that formats events with hclog
// (github.com/hashicorp/go-hclog), as text or JSON.
//
// Levels:
//
//   - error: failed runs and LM calls, problems with bus subscribers;
//   - warn: retries, queue and rate-limit waits over a second, circuit
//     breaker changes, LM answers cut off at max_tokens (with DSPy's
//     truncation warning), parse failures, adapter fallbacks, failed
//     evaluation examples, and events this logger had to drop;
//   - info: run and optimization start and end, new best candidates;
//   - debug: every module call and LM call, with tokens, latency, cache hits
//     and cost, evaluation examples and optimizer trials;
//   - trace: as debug, plus module inputs and outputs, prompts, completions
//     and raw unparsable answers, each truncated.
//
// Each line carries the short run and span ids (their first 8 hex digits).
// Logging never slows the program: the subscription drops its oldest
// events when its buffer is full, and says so in the log.
package logging

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/dspex/dspex/core/event"
)

// Defaults for Options.
const (
	DefaultLevel = "info"
	DefaultName  = "dspex"
	// DefaultBuffer is how many events may wait for the writer before the
	// oldest are dropped.
	DefaultBuffer = 4096
	// SlowWait is the queue or rate-limit wait above which a wait is
	// logged at warn rather than debug.
	SlowWait = time.Second
	// maxText bounds each prompt, completion or JSON value logged at trace
	// level.
	maxText = 2000
	// shortID is how many leading hex digits of run and span ids are
	// logged.
	shortID = 8
)

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("logging: logger closed")

// Options configure a Logger. The zero value logs at info level, as text.
type Options struct {
	// Level is the least severe level written: "trace", "debug", "info",
	// "warn" or "error" (case-insensitive). Default (and for anything else)
	// "info".
	Level string
	// JSON writes one JSON object a line instead of text.
	JSON bool
	// Name is the logger's name, shown on every line. Default "dspex".
	Name string
	// Buffer is how many events may wait for the writer; past that the
	// oldest are dropped and counted. Default 4096.
	Buffer int
	// ErrorsReported says that whoever runs the program reports the errors
	// that end runs and LM calls itself (the dspex commands print each
	// failed input or request once): failed runs and LM calls are then
	// logged at info rather than error, so that one failure is not shown
	// several times.
	ErrorsReported bool
}

// Logger logs the events of the buses it is attached to. Safe for
// concurrent use; lines are written whole, one at a time.
type Logger struct {
	log    hclog.Logger
	level  hclog.Level
	buffer int
	// failed is the level of failed runs and LM calls.
	failed hclog.Level

	mu     sync.Mutex
	subs   []*subscription
	closed bool

	// warnedDemos holds the demo-key warnings written (signature and
	// keys), so that an optimizer's many copies of one predictor, each
	// with demos from the same data, warn once.
	warnedMu    sync.Mutex
	warnedDemos map[string]bool
}

// maxWarnedDemos bounds warnedDemos; past it, warnings are not deduplicated.
const maxWarnedDemos = 1024

// firstDemoWarning reports whether d's signature and keys were not warned
// about yet, and remembers them.
func (l *Logger) firstDemoWarning(d *event.DemoKeysInfo) bool {
	key := d.Signature + "\x00" + strings.Join(d.Keys, "\x00")
	l.warnedMu.Lock()
	defer l.warnedMu.Unlock()
	if l.warnedDemos[key] {
		return false
	}
	if l.warnedDemos == nil {
		l.warnedDemos = map[string]bool{}
	}
	if len(l.warnedDemos) < maxWarnedDemos {
		l.warnedDemos[key] = true
	}
	return true
}

// subscription is one Attach: its bus subscription and the dropped count
// already logged.
type subscription struct {
	sub atomic.Pointer[event.Subscription]
	// reported is only touched by the subscription's handler goroutine and,
	// once that has ended, by Close.
	reported int64
}

// New returns a logger writing to w (os.Stderr when nil). It logs nothing
// until attached to a bus.
func New(w io.Writer, opts Options) *Logger {
	level := parseLevel(opts.Level)
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	failed := hclog.Error
	if opts.ErrorsReported {
		failed = hclog.Info
	}
	return &Logger{
		log: hclog.New(&hclog.LoggerOptions{
			Name:       opts.Name,
			Level:      level,
			Output:     w,
			JSONFormat: opts.JSON,
			// Signatures ("question -> answer") and prompts are read by
			// people and jq, not embedded in HTML.
			JSONEscapeDisabled: true,
			Color:              hclog.ColorOff,
		}),
		level:  level,
		buffer: opts.Buffer,
		failed: failed,
	}
}

func parseLevel(s string) hclog.Level {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return hclog.Trace
	case "debug":
		return hclog.Debug
	case "warn", "warning":
		return hclog.Warn
	case "error":
		return hclog.Error
	}
	return hclog.Info
}

// maxLevels is the most severe level each kind is logged at; a logger
// subscribes only to kinds it may write, so that publishers skip building
// payloads nobody reads.
func maxLevels(failed hclog.Level) map[event.Kind]hclog.Level {
	return map[event.Kind]hclog.Level{
		event.RunStart:         hclog.Info,
		event.RunEnd:           max(failed, hclog.Info),
		event.ModuleStart:      hclog.Debug,
		event.ModuleEnd:        hclog.Debug,
		event.LMStart:          hclog.Debug,
		event.LMEnd:            max(failed, hclog.Debug),
		event.LMRetry:          hclog.Warn,
		event.LMQueueWait:      hclog.Warn,
		event.LMRateLimitWait:  hclog.Warn,
		event.BreakerState:     hclog.Warn,
		event.ParseFailure:     hclog.Warn,
		event.AdapterFallback:  hclog.Warn,
		event.DemoExtraKeys:    hclog.Warn,
		event.EvalExample:      hclog.Warn,
		event.OptimizerStart:   hclog.Info,
		event.OptimizerTrial:   hclog.Debug,
		event.OptimizerNewBest: hclog.Info,
		event.OptimizerEnd:     hclog.Error,
		event.SubscriberError:  hclog.Error,
	}
}

// Attach subscribes the logger to bus, dropping the oldest events when it
// falls behind.
func (l *Logger) Attach(bus *event.Bus) error {
	if bus == nil {
		return errors.New("logging: attach to nil bus")
	}
	var kinds []event.Kind
	for k, most := range maxLevels(l.failed) {
		if most >= l.level {
			kinds = append(kinds, k)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	s := &subscription{}
	sub, err := bus.Subscribe(event.SubscribeOptions{
		Name: "logging", Kinds: kinds, Buffer: l.buffer, Policy: event.DropOldest,
	}, func(ev event.Event) {
		l.reportDrops(s)
		l.write(ev)
	})
	if err != nil {
		return fmt.Errorf("logging: subscribe: %w", err)
	}
	s.sub.Store(sub)
	l.subs = append(l.subs, s)
	return nil
}

// Close unsubscribes, logging what was buffered and any drops not yet
// reported. Later calls do nothing.
func (l *Logger) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	subs := l.subs
	l.subs = nil
	l.mu.Unlock()
	for _, s := range subs {
		s.sub.Load().Close()
		l.reportDrops(s)
	}
}

// reportDrops logs the events s dropped since the last report.
func (l *Logger) reportDrops(s *subscription) {
	sub := s.sub.Load()
	if sub == nil {
		return // the first events can arrive before Subscribe returns
	}
	dropped := sub.Stats().Dropped
	if dropped <= s.reported {
		return
	}
	l.log.Warn("log events dropped: the log could not keep up", "dropped", dropped-s.reported,
		"dropped_total", dropped, "buffer", l.buffer)
	s.reported = dropped
}

// write logs one event: each payload type has its own method below.
func (l *Logger) write(ev event.Event) {
	e := entry{ev: ev, ids: []any{"run", short(ev.RunID), "span", short(ev.SpanID)}, trace: l.level <= hclog.Trace}
	switch d := ev.Data.(type) {
	case *event.RunInfo:
		l.runInfo(e, d)
	case *event.ModuleCall:
		l.moduleCall(e, d)
	case *event.LMCall:
		l.lmCall(e, d)
	case *event.LMRetryInfo:
		l.lmRetry(e, d)
	case *event.LMWait:
		l.lmWait(e, d)
	case *event.BreakerChange:
		l.breakerChange(e, d)
	case *event.ParseFailureInfo:
		l.parseFailure(e, d)
	case *event.DemoKeysInfo:
		l.demoKeys(e, d)
	case *event.EvalExampleInfo:
		l.evalExample(e, d)
	case *event.OptimizerInfo:
		l.optimizer(e, d)
	case *event.OptimizerTrialInfo:
		l.optimizerTrial(e, d)
	case *event.SubscriberProblem:
		l.log.Error("event subscriber problem", "subscriber", d.Subscriber, "problem", d.Problem, "dropped", d.Dropped)
	}
}

// entry is what every payload's line starts from.
type entry struct {
	ev event.Event
	// ids are the short run and span ids every line carries.
	ids []any
	// trace reports whether the logger writes trace-level detail.
	trace bool
}

func (l *Logger) runInfo(e entry, d *event.RunInfo) {
	args := append(e.ids, "name", d.Name)
	if d.Program != "" {
		args = append(args, "program", d.Program)
	}
	if e.ev.Kind == event.RunStart {
		l.log.Info("run started", args...)
		return
	}
	args = append(args, "calls", d.Calls, "cache_hits", d.CacheHits,
		"prompt_tokens", d.PromptTokens, "completion_tokens", d.CompletionTokens, "cost_usd", d.CostUSD)
	if d.CostUnknownCalls > 0 {
		args = append(args, "cost_unknown_calls", d.CostUnknownCalls)
	}
	if d.Error != "" {
		l.log.Log(l.failed, "run failed", append(args, "error", d.Error)...)
		return
	}
	l.log.Info("run finished", args...)
}

func (l *Logger) moduleCall(e entry, d *event.ModuleCall) {
	args := append(e.ids, "parent", short(e.ev.ParentID), "module", d.Module)
	if d.Signature != "" {
		args = append(args, "signature", d.Signature)
	}
	if e.ev.Kind == event.ModuleStart {
		if e.trace {
			l.log.Trace("module start", append(args, "inputs", jsonText(d.Inputs))...)
			return
		}
		l.log.Debug("module start", args...)
		return
	}
	args = append(args, "duration", duration(d.Duration))
	if d.Error != "" {
		args = append(args, "error", d.Error)
	}
	if e.trace && d.Outputs != nil {
		l.log.Trace("module end", append(args, "outputs", jsonText(d.Outputs))...)
		return
	}
	l.log.Debug("module end", args...)
}

func (l *Logger) lmCall(e entry, d *event.LMCall) {
	args := append(e.ids, "parent", short(e.ev.ParentID), "model", d.Model)
	if d.Adapter != "" {
		args = append(args, "adapter", d.Adapter)
	}
	if e.ev.Kind == event.LMStart {
		if e.trace {
			l.log.Trace("lm call", append(args, "messages", messages(d.Messages))...)
			return
		}
		l.log.Debug("lm call", args...)
		return
	}
	args = append(args, "prompt_tokens", d.PromptTokens, "completion_tokens", d.CompletionTokens,
		"latency", duration(d.Latency), "cache_hit", d.CacheHit, "attempts", d.Attempts)
	if d.CostKnown {
		args = append(args, "cost_usd", d.CostUSD)
	}
	if d.QueueWait > 0 {
		args = append(args, "queue_wait", duration(d.QueueWait))
	}
	if d.RateLimitWait >= time.Millisecond {
		args = append(args, "rate_limit_wait", duration(d.RateLimitWait))
	}
	if d.Error != "" {
		l.lmFailed(d, args)
		return
	}
	if slices.Contains(d.FinishReasons, "length") {
		l.log.Warn(truncationWarning(d.Params), append(args, "finish_reasons", strings.Join(d.FinishReasons, ","))...)
		return
	}
	if e.trace {
		l.log.Trace("lm done", append(args, "completions", truncate(strings.Join(d.Completions, "\n---\n")))...)
		return
	}
	l.log.Debug("lm done", args...)
}

// lmFailed logs a failed LM call; args already hold the call's fields.
func (l *Logger) lmFailed(d *event.LMCall, args []any) {
	args = append(args, "error", d.Error)
	if d.ErrorKind != "" {
		args = append(args, "error_kind", d.ErrorKind)
	}
	if canceled(d.ErrorKind, d.Error) {
		// The caller gave up (a deadline, or speculative work no
		// longer needed): not a failure of the LM.
		l.log.Debug("lm call canceled", args...)
		return
	}
	l.log.Log(l.failed, "lm call failed", args...)
}

func (l *Logger) lmRetry(e entry, d *event.LMRetryInfo) {
	l.log.Warn("lm retry", append(e.ids, "model", d.Model, "attempt", d.Attempt, "wait", duration(d.Wait), "error", d.Error)...)
}

func (l *Logger) lmWait(e entry, d *event.LMWait) {
	msg := "lm queue wait"
	if e.ev.Kind == event.LMRateLimitWait {
		msg = "lm rate limit wait"
	}
	args := append(e.ids, "model", d.Model, "wait", duration(d.Wait))
	if d.Wait > SlowWait {
		l.log.Warn(msg, args...)
		return
	}
	l.log.Debug(msg, args...)
}

func (l *Logger) breakerChange(e entry, d *event.BreakerChange) {
	l.log.Warn("circuit breaker "+d.To, append(e.ids, "breaker", d.Name, "from", d.From, "to", d.To)...)
}

func (l *Logger) parseFailure(e entry, d *event.ParseFailureInfo) {
	args := append(e.ids, "adapter", d.Adapter)
	if d.Field != "" {
		args = append(args, "field", d.Field)
	}
	args = append(args, "error", d.Error)
	msg := "parse failure"
	if e.ev.Kind == event.AdapterFallback {
		msg = "adapter fallback"
		args = append(args, "fallback", d.Fallback)
	}
	if e.trace {
		args = append(args, "raw", truncate(d.Raw))
	}
	l.log.Warn(msg, args...)
}

func (l *Logger) demoKeys(e entry, d *event.DemoKeysInfo) {
	if !l.firstDemoWarning(d) {
		return
	}
	l.log.Warn("demo has keys the signature lacks; they are left out of the prompt",
		append(e.ids, "signature", d.Signature, "demo", d.Demo, "keys", strings.Join(d.Keys, ", "))...)
}

func (l *Logger) evalExample(e entry, d *event.EvalExampleInfo) {
	args := append(e.ids, "index", d.Index, "score", d.Score, "duration", duration(d.Duration))
	if d.Error != "" {
		l.log.Warn("eval example failed", append(args, "error", d.Error)...)
		return
	}
	if e.trace {
		args = append(args, "prediction", jsonText(d.Prediction))
	}
	l.log.Debug("eval example", args...)
}

func (l *Logger) optimizer(e entry, d *event.OptimizerInfo) {
	args := append(e.ids, "optimizer", d.Optimizer)
	if e.ev.Kind == event.OptimizerStart {
		l.log.Info("optimizer started", args...)
		return
	}
	if d.BestScore != nil {
		args = append(args, "best_score", *d.BestScore)
	}
	if d.Error != "" {
		l.log.Error("optimizer failed", append(args, "error", d.Error)...)
		return
	}
	l.log.Info("optimizer finished", args...)
}

func (l *Logger) optimizerTrial(e entry, d *event.OptimizerTrialInfo) {
	args := append(e.ids, "optimizer", d.Optimizer, "trial", d.Trial)
	if d.Score != nil {
		args = append(args, "score", *d.Score)
	}
	if d.BestScore != nil {
		args = append(args, "best_score", *d.BestScore)
	}
	if d.Minibatch {
		args = append(args, "minibatch", true)
	}
	if e.ev.Kind == event.OptimizerNewBest {
		l.log.Info("optimizer new best", args...)
		return
	}
	l.log.Debug("optimizer trial", args...)
}

// canceled reports whether an LM error is the caller giving up rather than
// the call failing.
func canceled(kind, msg string) bool {
	k := strings.ToLower(kind)
	return k == "canceled" || k == "cancelled" || strings.Contains(msg, "context canceled")
}

// truncationWarning is DSPy's warning for an answer cut off at the token
// limit (dspy.LM._check_truncation), with DSPEx's ways to inspect the call
// and raise the limit. params are the call's parameters, in which
// max_tokens and temperature are present only when the call set them.
func truncationWarning(params map[string]any) string {
	setting := func(name string) string {
		if v, ok := params[name]; ok {
			return fmt.Sprint(v)
		}
		return "unset"
	}
	return fmt.Sprintf("LM response was truncated due to exceeding max_tokens=%s. "+
		"You can inspect the latest LM interactions with `dspex traces show`. "+
		"To avoid truncation, consider passing a larger max_tokens (lm.max_tokens in the program file). "+
		"You may also consider increasing the temperature (currently %s) if the reason for truncation is repetition.",
		setting("max_tokens"), setting("temperature"))
}

func short(id string) string {
	if len(id) > shortID {
		return id[:shortID]
	}
	return id
}

// duration renders d rounded for reading: whole milliseconds, or
// microseconds under a millisecond.
func duration(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func messages(ms []event.Message) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content)
		if b.Len() > maxText {
			break
		}
	}
	return truncate(b.String())
}

func jsonText(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return truncate(fmt.Sprintf("%v", v))
	}
	return truncate(strings.TrimSuffix(b.String(), "\n"))
}

// truncate cuts s to at most maxText bytes on a rune boundary, marking the
// cut.
func truncate(s string) string {
	const mark = "…[truncated]"
	if len(s) <= maxText {
		return s
	}
	cut := maxText - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
