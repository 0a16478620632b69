package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

type runFlags struct {
	program     string
	state       string
	input       string
	inputs      string
	concurrency int
	skipInvalid bool
	env         envFlags
	observe     observeFlags
}

func newRunCommand(s *streams) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run --program FILE (--input JSON | --inputs FILE.jsonl)",
		Short: "Run a program on one input or a JSONL file of inputs",
		Long: `Run a program file (see docs/program-file.md) on one input given as a JSON
object (--input '{"question": "..."}') or on every line of a JSONL file
(--inputs data.jsonl; "-" reads standard input).

Each prediction is printed to standard output as one JSON object holding the
program's output fields, in input order. An input that fails prints
{"error": "..."} on its line instead (and the reason, once, on standard
error), and the command exits with status 1. Blank lines of the JSONL file
are skipped; a line that is not a JSON object stops the command before any
LM call, unless --skip-invalid passes over it (it is reported at the end).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRun(cmd.Context(), s, f)
		},
	}
	cmd.Flags().StringVar(&f.program, "program", "", "program file (YAML)")
	cmd.Flags().StringVar(&f.state, "state", "", "program state to load (DSPy's JSON format, e.g. from dspex optimize)")
	cmd.Flags().StringVar(&f.input, "input", "", "one input as a JSON object")
	cmd.Flags().StringVar(&f.inputs, "inputs", "", "JSONL file with one input object per line (- for stdin)")
	cmd.Flags().IntVar(&f.concurrency, "concurrency", 8, "inputs run at once")
	cmd.Flags().BoolVar(&f.skipInvalid, "skip-invalid", false, "pass over --inputs lines that are not JSON objects, reporting them at the end")
	f.env.register(cmd)
	f.observe.register(cmd)
	_ = cmd.MarkFlagRequired("program")
	return cmd
}

func usageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

func runRun(ctx context.Context, s *streams, f *runFlags) (err error) {
	if (f.input == "") == (f.inputs == "") {
		return usageError("give exactly one of --input and --inputs")
	}
	if f.concurrency < 1 {
		return usageError("--concurrency must be at least 1, got %d", f.concurrency)
	}
	spec, prog, err := loadProgram(f.program, f.state)
	if err != nil {
		return err
	}
	set, err := readInputs(s, f)
	if err != nil {
		return err
	}
	inputs := set.Examples
	sig, err := servedSignature(spec)
	if err != nil {
		return err
	}
	ctx, ss, err := startSession(ctx, s, &f.env, &f.observe, spec, event.RunInfo{
		Name: "run", Program: f.program, Meta: map[string]any{"inputs": len(inputs), "concurrency": f.concurrency, "state": f.state},
	}, "")
	if err != nil {
		return err
	}
	defer func() { err = ss.end(ctx, err) }()
	outputs, err := spec.Outputs()
	if err != nil {
		return err
	}
	done, errs := 0, 0
	// A single input shows no progress: its answer is the progress.
	progress := func(done, errs int) {
		if len(inputs) > 1 {
			ss.obs.progressf(ctx, "run", done, len(inputs), errs)
		}
	}
	progress(0, 0)

	var lastErr error
	failed := runOrdered(ctx, len(inputs), f.concurrency, func(ctx context.Context, i int) ([]byte, error) {
		in := inputs[i].Map()
		if err := sig.CheckInputs(in); err != nil {
			return nil, err
		}
		pred, err := prog.Forward(ctx, in)
		if err != nil {
			return nil, err
		}
		return outputJSON(outputs, pred), nil
	}, func(i int, line []byte, err error) {
		done++
		if err != nil {
			errs++
			lastErr = err
			// One line on standard error, naming the input when there
			// are several; the JSON line keeps stdout in input order.
			if f.inputs != "" {
				fmt.Fprintf(s.err, "dspex: %s: %v\n", set.Where(inputsName(f), i), err)
			} else {
				fmt.Fprintf(s.err, "dspex: %v\n", err)
			}
			line = errorJSON(err)
		}
		s.out.Write(append(line, '\n'))
		progress(done, errs)
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	reportSkipped(s, set.Skipped)
	switch {
	case failed > 0 && len(inputs) == 1:
		return &ExitError{Code: 1, Err: lastErr, Reported: true}
	case failed > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d inputs failed", failed, len(inputs))}
	}
	return nil
}

// errorJSON is the JSON line of a failed input, {"error": "..."}, written
// as the predictions are (pyjson: no HTML escaping).
func errorJSON(err error) []byte {
	b, _ := pyjson.Object{{Key: "error", Value: err.Error()}}.MarshalJSON()
	return b
}

// reportSkipped lists on standard error the lines --skip-invalid passed
// over.
func reportSkipped(s *streams, skipped []*example.LineError) {
	if len(skipped) == 0 {
		return
	}
	// One write, so that no progress line lands inside the list.
	var b strings.Builder
	fmt.Fprintf(&b, "dspex: skipped %s:\n", countNoun(int64(len(skipped)), "invalid line", "invalid lines"))
	for _, le := range skipped {
		fmt.Fprintf(&b, "dspex:   %v\n", le)
	}
	io.WriteString(s.err, b.String())
}

// inputsName is how errors name the --inputs file.
func inputsName(f *runFlags) string {
	if f.inputs == "-" {
		return "stdin"
	}
	return f.inputs
}

// readInputs reads --input, or the lines of --inputs.
func readInputs(s *streams, f *runFlags) (*example.JSONL, error) {
	if f.input != "" {
		var e example.Example
		if err := e.UnmarshalJSON([]byte(f.input)); err != nil {
			return nil, usageError("--input: %v", err)
		}
		return &example.JSONL{Examples: []example.Example{e}, Lines: []int{1}}, nil
	}
	opts := example.JSONLOptions{SkipInvalid: f.skipInvalid}
	if f.inputs == "-" {
		return example.ReadJSONLWith(s.in, inputsName(f), opts)
	}
	data, err := os.ReadFile(f.inputs)
	if err != nil {
		return nil, fmt.Errorf("read inputs: %w", err)
	}
	return example.ReadJSONLWith(bytes.NewReader(data), f.inputs, opts)
}

// outputJSON writes a prediction's output fields in the program's order,
// then any other fields the prediction has.
func outputJSON(outputs []signature.Field, pred *example.Prediction) []byte {
	obj := pyjson.Object{}
	seen := map[string]bool{}
	for _, f := range outputs {
		if v, ok := pred.Get(f.Name); ok {
			obj = append(obj, pyjson.Member{Key: f.Name, Value: f.Type.Normalize(v)})
			seen[f.Name] = true
		}
	}
	for _, k := range pred.Keys() {
		if !seen[k] {
			v, _ := pred.Get(k)
			obj = append(obj, pyjson.Member{Key: k, Value: v})
		}
	}
	b, _ := obj.MarshalJSON()
	return b
}

// runOrdered runs work for indexes [0, n) with at most conc at once and
// hands each result to emit in index order, as soon as all earlier results
// have been emitted. It returns how many failed. Once ctx is cancelled no
// new work starts.
func runOrdered(ctx context.Context, n, conc int, work func(context.Context, int) ([]byte, error), emit func(int, []byte, error)) int {
	type result struct {
		line []byte
		err  error
	}
	results := make([]chan result, n)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	launched := make(chan struct{})
	go func() {
		defer close(launched)
		for i := range n {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for j := i; j < n; j++ {
					results[j] <- result{err: ctx.Err()}
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				line, err := work(ctx, i)
				results[i] <- result{line, err}
			}()
		}
	}()
	failed := 0
	for i := range n {
		r := <-results[i]
		if r.err != nil {
			failed++
			if errors.Is(r.err, context.Canceled) && ctx.Err() != nil {
				continue
			}
		}
		emit(i, r.line, r.err)
	}
	<-launched
	wg.Wait()
	return failed
}
