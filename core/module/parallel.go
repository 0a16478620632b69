package module

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dspex/dspex/core/example"
)

// Parallel defaults, DSPy's settings.num_threads and settings.max_errors.
const (
	DefaultParallelConcurrency = 8
	DefaultParallelMaxErrors   = 10
)

// maxPanicStack bounds the stack kept in a PanicError.
const maxPanicStack = 64 << 10

var (
	// ErrParallelMaxErrors is wrapped by Run's error when it stopped because
	// MaxErrors items failed (DSPy raises "Execution cancelled due to
	// errors or interruption.").
	ErrParallelMaxErrors = errors.New("module: parallel run stopped: too many errors")
	// ErrParallelSkipped is the error reported for an item that never ran
	// because the run stopped first.
	ErrParallelSkipped = errors.New("module: parallel item not run: the run stopped first")
)

// PanicError is a recovered panic, reported as an error: a module's panic
// inside Parallel, or a reward function's inside BestOfN and Refine.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the panicking goroutine's stack, cut at 64 KiB.
	Stack []byte
}

func newPanicError(v any) *PanicError {
	st := debug.Stack()
	if len(st) > maxPanicStack {
		st = st[:maxPanicStack]
	}
	return &PanicError{Value: v, Stack: st}
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// ParallelItem is one module call of a parallel run: DSPy's
// (module, example) pair, with the example's inputs.
type ParallelItem struct {
	Module Module
	Inputs Inputs
}

// ParallelOptions configure a Parallel. The zero value gives DSPy's
// defaults.
type ParallelOptions struct {
	// Concurrency is how many items run at once (DSPy's num_threads).
	// Default 8.
	Concurrency int
	// MaxErrors stops the run when this many items have failed, as DSPy's
	// ParallelExecutor does (error_count >= max_errors): no new item
	// starts, the running ones are cancelled, and Run returns an error
	// wrapping ErrParallelMaxErrors. Default 10; negative means never stop
	// for errors.
	MaxErrors int
	// Timeout bounds each item: its context is cancelled after this long
	// and a module that honours its context then fails with an error
	// matching context.DeadlineExceeded. Zero means no per-item timeout.
	// (DSPy's timeout, 120 s, instead re-submits up to straggler_limit
	// slow items once, without stopping them; Go modules honour their
	// context, so DSPEx bounds items instead.)
	Timeout time.Duration
	// ReturnFailed makes Run report each item's error (DSPy's
	// return_failed_examples); without it the error slice is nil and a
	// failed item is just a nil prediction, as DSPy's None.
	ReturnFailed bool
}

// Parallel runs module calls concurrently on a bounded pool of goroutines.
// It is DSPy's dspy.Parallel. Unlike the modules here it is not a Program:
// it runs many (module, inputs) pairs rather than one module, and has no
// predictors of its own. Safe for concurrent use; each Run owns its
// goroutines and waits for them.
type Parallel struct {
	opts ParallelOptions
}

// NewParallel returns a Parallel with opts (zero fields take the defaults).
func NewParallel(opts ParallelOptions) *Parallel {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultParallelConcurrency
	}
	if opts.MaxErrors == 0 {
		opts.MaxErrors = DefaultParallelMaxErrors
	}
	return &Parallel{opts: opts}
}

// Options returns the options in effect, defaults filled in.
func (p *Parallel) Options() ParallelOptions { return p.opts }

// Run calls every item's module with its inputs, at most Concurrency at a
// time, and returns the predictions in the items' order: preds[i] is item
// i's, nil when it failed or did not run. With ReturnFailed, errs[i] is item
// i's error (nil on success, ErrParallelSkipped when it never started); a
// module's panic is recovered and reported as that item's error, a
// *PanicError. Failed items do not fail the run; err is non-nil only when
// the run stopped early: because MaxErrors items failed
// (ErrParallelMaxErrors) or because ctx was cancelled (wrapping its
// error). Either way Run stops starting items, cancels the running ones and
// returns once every goroutine it started has returned, with the results
// it has.
func (p *Parallel) Run(ctx context.Context, items []ParallelItem) (preds []*example.Prediction, errs []error, err error) {
	preds = make([]*example.Prediction, len(items))
	errs = make([]error, len(items))
	for i := range errs {
		errs[i] = ErrParallelSkipped
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		next    atomic.Int64
		mu      sync.Mutex
		failed  int
		tooMany bool
		wg      sync.WaitGroup
	)
	for range min(p.opts.Concurrency, len(items)) {
		wg.Go(func() {
			for runCtx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				pred, err := p.runItem(runCtx, i, items[i])
				mu.Lock()
				preds[i], errs[i] = pred, err
				// Items failing because the run is stopping are not counted.
				if err != nil && runCtx.Err() == nil {
					failed++
					if p.opts.MaxErrors > 0 && failed >= p.opts.MaxErrors {
						tooMany = true
						cancel(ErrParallelMaxErrors)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	if !p.opts.ReturnFailed {
		errs = nil
	}
	switch {
	case tooMany:
		err = fmt.Errorf("%w: %d of %d items failed (max errors %d)", ErrParallelMaxErrors, failed, len(items), p.opts.MaxErrors)
	case ctx.Err() != nil:
		err = fmt.Errorf("module: parallel run cancelled: %w", context.Cause(ctx))
	}
	return preds, errs, err
}

// runItem runs one item under its timeout, containing a panic.
func (p *Parallel) runItem(ctx context.Context, i int, item ParallelItem) (pred *example.Prediction, err error) {
	if item.Module == nil {
		return nil, fmt.Errorf("module: parallel item %d: no module", i)
	}
	if p.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.Timeout)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			pred, err = nil, fmt.Errorf("module: parallel item %d: %w", i, newPanicError(v))
		}
	}()
	pred, err = item.Module.Forward(ctx, maps.Clone(item.Inputs))
	if err != nil {
		if p.opts.Timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
			// Make the timeout recognisable even when the module reports it
			// in its own terms (lm.ErrTimeout, say).
			return nil, fmt.Errorf("module: parallel item %d: timed out after %v: %w (%w)", i, p.opts.Timeout, err, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("module: parallel item %d: %w", i, err)
	}
	if pred == nil {
		return nil, fmt.Errorf("module: parallel item %d: the module returned no prediction", i)
	}
	return pred, nil
}
