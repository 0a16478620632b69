package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
)

// Defaults for Options.
const (
	DefaultConcurrency = 16
	// DefaultMaxErrors is DSPy's settings.max_errors.
	DefaultMaxErrors = 10
	DefaultLabel     = "eval"
)

// Bounds on the error reasons a MaxErrorsError lists.
const (
	maxReasons      = 5
	maxReasonLength = 300
	maxPanicStack   = 64 << 10
)

// ErrMaxErrors is wrapped by the error Run returns when it stopped because
// Options.MaxErrors examples failed.
var ErrMaxErrors = errors.New("evaluate: too many errors")

// Options configure Run. The zero value gives the defaults.
type Options struct {
	// Concurrency is how many examples run at once (DSPy's num_threads).
	// Default 16.
	Concurrency int
	// MaxErrors stops the run once this many examples have failed (DSPy's
	// max_errors: the run stops when the count reaches it, so 1 stops at
	// the first failure). Default 10; negative means never stop for
	// errors.
	MaxErrors int
	// FailureScore is the score of a failed example (DSPy's
	// failure_score). Default 0.
	FailureScore float64
	// Timeout bounds each example, program and metric together: its
	// context is cancelled after this long and the example fails with an
	// error matching context.DeadlineExceeded. Default none. Run cannot
	// stop a program that ignores its context; it waits for it.
	Timeout time.Duration
	// Label names the run in progress events. Default "eval".
	Label string
	// Callback, when set, is called with each finished example's result
	// by the single consumer goroutine — so never concurrently — in
	// completion order, not input order. A slow Callback slows the run
	// (workers wait to hand over results) but never makes it buffer more.
	// It may keep the ExampleResult but must not modify its Example or
	// Prediction, which the Result shares. A Callback that panics stops
	// the run; Run then returns an error saying so (a *PanicError).
	Callback func(ExampleResult)
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxErrors == 0 {
		o.MaxErrors = DefaultMaxErrors
	}
	if o.Label == "" {
		o.Label = DefaultLabel
	}
	return o
}

// ExampleResult is one example's outcome.
type ExampleResult struct {
	// Index is the example's position in the dataset.
	Index   int
	Example example.Example
	// Prediction is the program's output; nil when the program failed. It
	// is kept when only the metric failed.
	Prediction *example.Prediction
	// Score is the metric's score, or Options.FailureScore when Err is set.
	Score    float64
	Feedback string
	// Err is why the example failed, nil when it was scored.
	Err error
	// Duration is the example's wall time, program and metric together.
	Duration time.Duration
	// Usage and Cost are what the example spent: the prediction's own
	// (which Predict and the modules built on it report) plus the
	// metric's (an LM judge's). A program that failed reports nothing, so
	// its calls are not counted here; an lm.Tracker in the context (with
	// an lm.Stack) sees every call.
	Usage lm.Usage
	Cost  lm.Cost
}

// Result is an evaluation's outcome.
type Result struct {
	// Metric is the metric's name.
	Metric string
	// Score is Mean as a percentage rounded to two decimals, as DSPy's
	// Evaluate reports it (67.3).
	Score float64
	// Mean is the mean score of the finished examples (failed ones count
	// with Options.FailureScore): over the whole dataset when the run
	// completed, over the examples that finished when it stopped early.
	Mean float64
	// Total is the dataset's size; Scored + Errors + Skipped == Total.
	Total int
	// Scored counts the examples the metric scored.
	Scored int
	// Errors counts the examples that failed.
	Errors int
	// Skipped counts the examples that did not finish because the run
	// stopped early (MaxErrors, a cancelled context).
	Skipped int
	// Results are the finished examples' results, in input order.
	Results []ExampleResult
	// Usage and Cost sum the finished examples'.
	Usage lm.Usage
	Cost  lm.Cost
	// Wall is the run's wall time.
	Wall time.Duration
	// Stopped is why the run stopped early, nil when every example
	// finished: a *MaxErrorsError (matching ErrMaxErrors), the context's
	// error, or a Callback panic. Run returns it as its error too.
	Stopped error
}

// Reason is one distinct error message among the failed examples.
type Reason struct {
	// Message is the error's text, cut to 300 bytes.
	Message string
	// Count is how many examples failed with it.
	Count int
	// First is the index of the first example (in input order) that did.
	First int
	// Err is that example's error.
	Err error
}

// MaxErrorsError reports a run stopped by Options.MaxErrors, with the most
// frequent reasons. It matches ErrMaxErrors and, through errors.Is and
// errors.As, each listed reason's error.
type MaxErrorsError struct {
	// Failed counts the failed examples; Max is Options.MaxErrors; Total
	// is the dataset's size.
	Failed, Max, Total int
	// Reasons are the distinct error messages, most frequent first (ties:
	// first seen first), at most 5.
	Reasons []Reason
	// MoreReasons counts distinct messages not listed.
	MoreReasons int
}

func (e *MaxErrorsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %d of %d examples failed (max errors %d)", ErrMaxErrors, e.Failed, e.Total, e.Max)
	for i, r := range e.Reasons {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d× %s", r.Count, r.Message)
	}
	if e.MoreReasons > 0 {
		fmt.Fprintf(&b, "; and %d other errors", e.MoreReasons)
	}
	return b.String()
}

// Unwrap returns ErrMaxErrors and each listed reason's error.
func (e *MaxErrorsError) Unwrap() []error {
	errs := []error{ErrMaxErrors}
	for _, r := range e.Reasons {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errs
}

// PanicError is a program's, a metric's or a Callback's recovered panic.
type PanicError struct {
	// What panicked: "program", "metric NAME" or "callback".
	What string
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack, cut at 64 KiB.
	Stack []byte
}

func newPanicError(what string, v any) *PanicError {
	st := debug.Stack()
	if len(st) > maxPanicStack {
		st = st[:maxPanicStack]
	}
	return &PanicError{What: what, Value: v, Stack: st}
}

func (e *PanicError) Error() string { return fmt.Sprintf("%s panicked: %v", e.What, e.Value) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Run evaluates prog on every example of devset with m and returns the
// result table (see the package doc for how it runs). Each example's
// program call is prog.Forward(ctx, ex.Inputs()): the example's marked
// inputs, or every field when none are marked.
//
// The error is nil when every example finished, failed ones included. When
// the run stopped early Run returns the partial Result and a non-nil error,
// also in Result.Stopped: a *MaxErrorsError (errors.Is(err, ErrMaxErrors))
// or one wrapping the context's error. Either way every goroutine Run
// started has returned. A nil prog or m, or an empty devset, is an error
// with a nil Result. Run may be called concurrently; each call owns its
// goroutines.
func Run(ctx context.Context, prog module.Module, devset []example.Example, m metric.Metric, opts Options) (*Result, error) {
	switch {
	case prog == nil:
		return nil, errors.New("evaluate: no program")
	case m == nil:
		return nil, errors.New("evaluate: no metric")
	case len(devset) == 0:
		return nil, errors.New("evaluate: no examples")
	}
	r := &runner{prog: prog, devset: devset, metric: m, opts: opts.withDefaults(), traced: event.BusFrom(ctx) != nil}
	start := time.Now()
	if r.traced {
		ctx, r.span = event.StartSpan(ctx)
		if event.Enabled(ctx, event.ModuleStart) {
			r.call = &event.ModuleCall{Module: "Evaluate", Inputs: map[string]any{
				"label": r.opts.Label, "metric": m.Name(), "examples": len(devset), "concurrency": r.opts.Concurrency,
			}}
			event.Publish(ctx, event.ModuleStart, r.span, r.call)
		}
	}
	res := r.run(ctx)
	res.Wall = time.Since(start)
	if r.call != nil {
		end := *r.call
		end.Duration = res.Wall
		end.Outputs = map[string]any{"score": res.Score, "scored": res.Scored, "errors": res.Errors, "skipped": res.Skipped}
		if res.Stopped != nil {
			end.Error = res.Stopped.Error()
		}
		event.Publish(ctx, event.ModuleEnd, r.span, &end)
	}
	return res, res.Stopped
}

// runner is one Run.
type runner struct {
	prog   module.Module
	devset []example.Example
	metric metric.Metric
	opts   Options
	traced bool // a bus is present: open spans
	span   event.Span
	call   *event.ModuleCall // the Evaluate span's ModuleStart payload
}

// outcome is a worker's report of one example.
type outcome struct {
	res  ExampleResult
	span event.Span
}

// errStopped is the cancellation cause when MaxErrors is reached.
var errStopped = errors.New("evaluate: stopping: max errors reached")

// run runs the pool and the consumer and builds the Result.
func (r *runner) run(ctx context.Context) *Result {
	n := len(r.devset)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	workers := min(r.opts.Concurrency, n)
	// Capacity Concurrency: a worker that finished hands over without
	// waiting unless the consumer is a full pool's worth behind.
	results := make(chan outcome, workers)
	var (
		next     atomic.Int64
		failures atomic.Int64
		live     atomic.Int64
		wg       sync.WaitGroup
	)
	live.Store(int64(workers))
	for range workers {
		wg.Go(func() {
			defer func() {
				if live.Add(-1) == 0 {
					close(results)
				}
			}()
			for runCtx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				out, interrupted := r.one(runCtx, i)
				if interrupted {
					continue // cut short by the stop: skipped, not failed
				}
				if out.res.Err != nil && r.opts.MaxErrors > 0 && failures.Add(1) >= int64(r.opts.MaxErrors) {
					cancel(errStopped)
				}
				results <- out // waits while the consumer is behind
			}
		})
	}

	// The consumer: this goroutine.
	all := make([]ExampleResult, n)
	finished := make([]bool, n)
	done, errCount := 0, 0
	running := 0.0
	callback := r.opts.Callback
	r.progress(ctx, 0, 0, nil)
	for out := range results {
		er := out.res
		all[er.Index], finished[er.Index] = er, true
		done++
		if er.Err != nil {
			errCount++
		}
		running += er.Score
		r.publishExample(ctx, out)
		mean := running / float64(done)
		r.progress(ctx, done, errCount, &mean)
		if callback != nil {
			if err := safeCallback(callback, er); err != nil {
				callback = nil
				cancel(err)
			}
		}
	}
	wg.Wait()

	res := &Result{Metric: r.metric.Name(), Total: n}
	sum := 0.0
	for i, er := range all {
		if !finished[i] {
			continue
		}
		res.Results = append(res.Results, er)
		sum += er.Score
		res.Usage, res.Cost = res.Usage.Add(er.Usage), res.Cost.Add(er.Cost)
		if er.Err != nil {
			res.Errors++
		} else {
			res.Scored++
		}
	}
	res.Skipped = n - len(res.Results)
	if len(res.Results) > 0 {
		res.Mean = sum / float64(len(res.Results))
		res.Score = math.Round(100*res.Mean*100) / 100
	}
	cause := context.Cause(runCtx)
	switch {
	case errors.Is(cause, errStopped):
		res.Stopped = r.maxErrors(res)
	case cause != nil && ctx.Err() == nil:
		res.Stopped = cause // a Callback's panic
	case ctx.Err() != nil && res.Skipped > 0:
		res.Stopped = fmt.Errorf("evaluate: stopped after %d of %d examples: %w", len(res.Results), n, context.Cause(ctx))
	}
	return res
}

// maxErrors builds the MaxErrorsError from the failed examples, in input
// order.
func (r *runner) maxErrors(res *Result) *MaxErrorsError {
	e := &MaxErrorsError{Failed: res.Errors, Max: r.opts.MaxErrors, Total: res.Total}
	byMsg := map[string]int{}
	var reasons []Reason
	for _, er := range res.Results {
		if er.Err == nil {
			continue
		}
		msg := er.Err.Error()
		if len(msg) > maxReasonLength {
			msg = strings.ToValidUTF8(msg[:maxReasonLength], "") + "..."
		}
		if i, ok := byMsg[msg]; ok {
			reasons[i].Count++
			continue
		}
		byMsg[msg] = len(reasons)
		reasons = append(reasons, Reason{Message: msg, Count: 1, First: er.Index, Err: er.Err})
	}
	slices.SortStableFunc(reasons, func(a, b Reason) int { return b.Count - a.Count })
	if len(reasons) > maxReasons {
		e.MoreReasons = len(reasons) - maxReasons
		reasons = reasons[:maxReasons]
	}
	e.Reasons = reasons
	return e
}

// one runs example i. interrupted reports an example cut short because the
// run is stopping; it is skipped, not failed.
func (r *runner) one(ctx context.Context, i int) (out outcome, interrupted bool) {
	ex := r.devset[i]
	er := ExampleResult{Index: i, Example: ex}
	inputs := ex.Inputs()
	exCtx := ctx
	var call *event.ModuleCall
	if r.traced {
		exCtx, out.span = event.StartSpan(ctx)
		if event.Enabled(exCtx, event.ModuleStart) {
			call = &event.ModuleCall{Module: "Example", Inputs: ex.Inputs()}
			event.Publish(exCtx, event.ModuleStart, out.span, call)
		}
	}
	if r.opts.Timeout > 0 {
		var cancel context.CancelFunc
		exCtx, cancel = context.WithTimeout(exCtx, r.opts.Timeout)
		defer cancel()
	}

	start := time.Now()
	pred, err := r.forward(exCtx, inputs)
	var mr metric.Result
	if err == nil {
		mr, err = r.score(exCtx, ex, pred)
	}
	er.Duration = time.Since(start)
	er.Prediction = pred
	if pred != nil {
		er.Usage, er.Cost = pred.Usage, pred.Cost
	}
	er.Usage, er.Cost = er.Usage.Add(mr.Usage), er.Cost.Add(mr.Cost)
	if err != nil {
		if ctx.Err() != nil {
			interrupted = true
		} else if r.opts.Timeout > 0 && errors.Is(exCtx.Err(), context.DeadlineExceeded) {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("timed out after %v: %w", r.opts.Timeout, err)
			} else {
				// Make the timeout recognisable even when the program
				// reports it in its own terms (lm.ErrTimeout, say).
				err = fmt.Errorf("timed out after %v: %w (%w)", r.opts.Timeout, err, context.DeadlineExceeded)
			}
		}
		er.Err, er.Score = err, r.opts.FailureScore
	} else {
		er.Score, er.Feedback = mr.Score, mr.Feedback
	}
	if call != nil {
		end := *call
		end.Duration = er.Duration
		if er.Err != nil {
			end.Error = er.Err.Error()
		} else {
			end.Outputs = map[string]any{"score": er.Score}
		}
		event.Publish(exCtx, event.ModuleEnd, out.span, &end)
	}
	out.res = er
	return out, interrupted
}

// forward runs the program, containing a panic.
func (r *runner) forward(ctx context.Context, inputs module.Inputs) (pred *example.Prediction, err error) {
	defer func() {
		if v := recover(); v != nil {
			pred, err = nil, newPanicError("program", v)
		}
	}()
	pred, err = r.prog.Forward(ctx, inputs)
	if err != nil {
		return nil, fmt.Errorf("program: %w", err)
	}
	if pred == nil {
		return nil, errors.New("program: returned no prediction")
	}
	return pred, nil
}

// score runs the metric, containing a panic and refusing scores that are
// not finite numbers.
func (r *runner) score(ctx context.Context, ex example.Example, pred *example.Prediction) (res metric.Result, err error) {
	name := r.metric.Name()
	defer func() {
		if v := recover(); v != nil {
			res, err = metric.Result{}, newPanicError("metric "+name, v)
		}
	}()
	res, err = r.metric.Score(ctx, ex, pred)
	switch {
	case err != nil:
		// The built-in metrics already say which metric failed.
		if !strings.HasPrefix(err.Error(), "metric "+name) {
			err = fmt.Errorf("metric %s: %w", name, err)
		}
		return res, err
	case math.IsNaN(res.Score) || math.IsInf(res.Score, 0):
		return res, fmt.Errorf("metric %s: score %v is not a finite number", name, res.Score)
	}
	return res, nil
}

// safeCallback calls the Callback, turning a panic into an error.
func safeCallback(cb func(ExampleResult), er ExampleResult) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("evaluate: %w", newPanicError("callback", v))
		}
	}()
	cb(er)
	return nil
}

// publishExample publishes an EvalExample event for a finished example.
func (r *runner) publishExample(ctx context.Context, out outcome) {
	if !r.traced || !event.Enabled(ctx, event.EvalExample) {
		return
	}
	er := out.res
	info := &event.EvalExampleInfo{Index: er.Index, Example: er.Example.Map(), Score: er.Score, Feedback: er.Feedback, Duration: er.Duration}
	if er.Prediction != nil {
		info.Prediction = er.Prediction.Map()
	}
	if er.Err != nil {
		info.Error = er.Err.Error()
	}
	event.Publish(ctx, event.EvalExample, out.span, info)
}

// progress publishes a Progress event.
func (r *runner) progress(ctx context.Context, done, errs int, score *float64) {
	if !r.traced || !event.Enabled(ctx, event.Progress) {
		return
	}
	event.Publish(ctx, event.Progress, r.span, &event.ProgressInfo{
		Label: r.opts.Label, Done: done, Total: len(r.devset), Errors: errs, Score: score,
	})
}
