// Package evaluate runs a program over a dataset and scores every
// prediction with a metric: DSPy's dspy.Evaluate. The CLI's eval command
// and the optimizers use it.
//
//	res, err := evaluate.Run(ctx, program, devset, metric.ExactMatch("answer"), evaluate.Options{})
//	fmt.Printf("%.2f%% (%d errors)\n", res.Score, res.Errors)
//
// # How it runs
//
// A bounded pool of Options.Concurrency workers takes examples in input
// order; each runs the program on the example's inputs and then the metric,
// under the run's context (and the per-example timeout, when set). Results
// flow through a bounded channel to one consumer, Run's own goroutine,
// which stores them, publishes events and calls Options.Callback. When the
// consumer falls behind, workers wait to hand over their results instead of
// starting more examples (backpressure): at most Concurrency examples run
// and at most Concurrency finished results wait at any time, whatever the
// dataset's size.
//
// A failed example — the program or the metric returned an error or
// panicked, the metric's score was not a finite number, or the example
// timed out — gets Options.FailureScore and counts as an error. Once
// MaxErrors examples have failed (DSPy's max_errors, counted as DSPy does:
// the run stops when the count reaches the limit), Run starts no more
// examples, cancels the running ones, waits for every goroutine it started
// and returns what it has with an error wrapping ErrMaxErrors. A cancelled
// context stops the run the same way. Examples that did not run, or were cut
// short by the stop, are Skipped and have no entry in Result.Results.
//
// The Result does not depend on scheduling: Results are in input order and
// the totals are summed in that order, so a complete run of a deterministic
// program gives the same Result every time.
//
// # Events
//
// With an event bus in the context (event.WithBus), Run opens an
// "Evaluate" module span, and within it one "Example" span per example, in
// which the program's own module and LM spans nest. The consumer publishes
// an event.EvalExample for each finished example (in that example's span;
// the trace store writes it to its eval_results table) and an
// event.Progress after each (label, done, total, errors, running mean
// score; one with done = 0 at the start). Without a bus nothing is built.
package evaluate
