package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/programfile"
	"github.com/dspex/dspex/core/signature"
)

// taskFlags are what eval and optimize share: the program, how it is
// scored, and how evaluations run.
type taskFlags struct {
	program     string
	state       string
	metric      string
	field       string
	concurrency int
	maxErrors   int
	timeout     time.Duration
	skipInvalid bool
	env         envFlags
	observe     observeFlags
}

func (f *taskFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.program, "program", "", "program file (YAML)")
	cmd.Flags().StringVar(&f.state, "state", "", "program state to load first (DSPy's JSON format)")
	cmd.Flags().StringVar(&f.metric, "metric", "exact_match", "metric: "+strings.Join(metric.Names(), ", "))
	cmd.Flags().StringVar(&f.field, "field", "", "output field the metric compares (default: answer, else the program's last output)")
	cmd.Flags().IntVar(&f.concurrency, "concurrency", 16, "examples evaluated at once")
	cmd.Flags().IntVar(&f.maxErrors, "max-errors", 10, "stop an evaluation after this many failed examples (-1: never)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 0, "per-example timeout (0: none)")
	cmd.Flags().BoolVar(&f.skipInvalid, "skip-invalid", false, "pass over data lines that are not JSON objects or lack a field, reporting them at the end")
	_ = cmd.MarkFlagRequired("program")
	f.env.register(cmd)
	f.observe.register(cmd)
	f.observe.registerDashboard(cmd)
}

// task is a loaded program with its metric.
type task struct {
	spec    *programfile.Spec
	prog    module.Program
	inputs  []string
	metric  metric.Metric
	field   string
	outputs []signature.Field
	// skipInvalid passes over bad data lines, collected in skipped.
	skipInvalid bool
	skipped     []*example.LineError
}

func (f *taskFlags) load() (*task, error) {
	if f.concurrency < 1 {
		return nil, usageError("--concurrency must be at least 1, got %d", f.concurrency)
	}
	spec, prog, err := loadProgram(f.program, f.state)
	if err != nil {
		return nil, err
	}
	outputs, err := spec.Outputs()
	if err != nil {
		return nil, err
	}
	t := &task{spec: spec, prog: prog, outputs: outputs, skipInvalid: f.skipInvalid}
	if n, ok := prog.(module.InputNamer); ok {
		t.inputs = n.InputNames()
	}
	t.field = f.field
	if t.field == "" {
		t.field = defaultField(outputs)
	}
	if !slices.ContainsFunc(outputs, func(o signature.Field) bool { return o.Name == t.field }) {
		return nil, usageError("--field %q is not an output of the program", t.field)
	}
	if t.metric, err = metric.ByName(f.metric, t.field); err != nil {
		return nil, usageError("--metric: %v", err)
	}
	return t, nil
}

// defaultField is "answer" when the program has it, else its last output.
func defaultField(outputs []signature.Field) string {
	for _, o := range outputs {
		if o.Name == "answer" {
			return o.Name
		}
	}
	if len(outputs) == 0 {
		return ""
	}
	return outputs[len(outputs)-1].Name
}

// data reads a JSONL data file, marking the program's inputs. Every
// example must have the program's inputs and the field the metric
// compares; with --skip-invalid, lines that are not such examples are
// passed over and collected in t.skipped.
func (t *task) data(path string) ([]example.Example, error) {
	d, err := example.LoadJSONLWith(path, example.JSONLOptions{InputKeys: t.inputs, SkipInvalid: t.skipInvalid})
	if err != nil {
		return nil, err
	}
	t.skipped = append(t.skipped, d.Skipped...)
	var exs []example.Example
	for i, ex := range d.Examples {
		var bad error
		for _, in := range t.inputs {
			if !ex.Has(in) {
				bad = fmt.Errorf("missing input field %q", in)
				break
			}
		}
		if bad == nil && !ex.Has(t.field) {
			bad = fmt.Errorf("missing gold field %q the metric compares", t.field)
		}
		if bad != nil {
			le := &example.LineError{File: path, Line: d.Lines[i], Err: bad}
			if !t.skipInvalid {
				return nil, le
			}
			t.skipped = append(t.skipped, le)
			continue
		}
		exs = append(exs, ex)
	}
	slices.SortStableFunc(t.skipped, func(a, b *example.LineError) int {
		return cmp.Or(strings.Compare(a.File, b.File), a.Line-b.Line)
	})
	if len(exs) == 0 {
		return nil, fmt.Errorf("%s: no examples", path)
	}
	return exs, nil
}

func (f *taskFlags) evalOptions(label string) evaluate.Options {
	return evaluate.Options{Concurrency: f.concurrency, MaxErrors: f.maxErrors, Timeout: f.timeout, Label: label}
}

type evalFlags struct {
	taskFlags
	data   string
	json   bool
	csvOut string
}

func newEvalCommand(s *streams) *cobra.Command {
	f := &evalFlags{}
	cmd := &cobra.Command{
		Use:   "eval --program FILE --data FILE.jsonl [--metric NAME] [--concurrency N] [--json]",
		Short: "Score a program on a JSONL dataset",
		Long: `Run the program on every example of a JSONL file and score its predictions
with a metric (exact_match by default; see --metric). The examples' fields
that are the program's inputs are its inputs; the metric compares the
prediction's --field with the example's.

Prints the score (the mean metric × 100, as DSPy reports it), counts, tokens,
cost and wall time; --json prints the summary and the per-example table as
JSON instead, --csv FILE writes the table as CSV. Every example's result is
recorded in the trace database. The evaluation stops cleanly after
--max-errors failed examples, reporting why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runEval(cmd.Context(), s, f) },
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.data, "data", "", "JSONL file of examples")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the summary and per-example table as JSON")
	cmd.Flags().StringVar(&f.csvOut, "csv", "", "write the per-example table as CSV to FILE")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}

func runEval(ctx context.Context, s *streams, f *evalFlags) (err error) {
	t, err := f.load()
	if err != nil {
		return err
	}
	devset, err := t.data(f.data)
	if err != nil {
		return err
	}
	ctx, ss, err := startSession(ctx, s, &f.env, &f.observe, t.spec, event.RunInfo{Name: "eval", Program: f.program,
		Meta: map[string]any{"data": f.data, "metric": t.metric.Name(), "field": t.field, "state": f.state, "examples": len(devset)}}, "")
	if err != nil {
		return err
	}
	defer func() { err = ss.end(ctx, err) }()
	res, evalErr := evaluate.Run(ctx, t.prog, devset, t.metric, f.evalOptions("eval"))
	ss.obs.endProgress()
	if res == nil {
		return evalErr
	}
	if f.csvOut != "" {
		if err := writeFileWith(f.csvOut, res.WriteCSV); err != nil {
			return err
		}
	}
	if f.json {
		if err := res.WriteJSON(s.out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(s.out, "score: %.2f (%s on %s)\n", res.Score, t.metric.Name(), t.field)
		fmt.Fprintf(s.out, "examples: %d scored, %d errors, %d skipped, of %d\n", res.Scored, res.Errors, res.Skipped, res.Total)
		fmt.Fprintf(s.out, "wall time: %s, tokens: %d, cost: %s\n", res.Wall.Round(time.Millisecond), res.Usage.TotalTokens, res.Cost)
		if ss.obs.store != nil {
			show := "dspex traces show " + ss.obs.RunID()
			if f.observe.db != "" {
				show += " --db " + f.observe.db
			}
			fmt.Fprintf(s.out, "run: %s (to see its calls: %s)\n", ss.obs.RunID(), show)
		} else {
			fmt.Fprintf(s.out, "run: %s\n", ss.obs.RunID())
		}
	}
	reportSkipped(s, t.skipped)
	return evalErr
}

// writeFileWith writes a file through write, atomically enough for
// reports: a failed write removes the partial file.
func writeFileWith(path string, write func(w io.Writer) error) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(fh); err != nil {
		fh.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return fh.Close()
}
