package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/trace"
)

const (
	dbFlagUsage = "trace database (default: $DSPEX_DB, else $XDG_STATE_HOME/dspex/traces.db, else ~/.local/state/dspex/traces.db)"
	// lineWidth is how many characters of a span's inputs, outputs or
	// error `traces show` prints on its one line.
	lineWidth = 100
	// maxShownSpans bounds the span tree `traces show` prints; export
	// writes them all.
	maxShownSpans = 1000
)

func newTracesCommand(s *streams) *cobra.Command {
	var db string
	cmd := &cobra.Command{
		Use:   "traces",
		Short: "List, show and export the runs recorded in the trace database",
		Long: `Every dspex command that runs a program records what it did — module calls,
LM calls with their prompts, responses, tokens and cost, retries, parse
failures, evaluation results and optimizer trials — in an SQLite trace
database (see docs/traces.md). These commands read it, also while another
process is writing it.

RUN is a run id, or any prefix of one that matches a single run.`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&db, "db", "", dbFlagUsage)
	cmd.AddCommand(newTracesListCommand(s, &db), newTracesShowCommand(s, &db), newTracesExportCommand(s, &db))
	return cmd
}

func newTracesListCommand(s *streams, db *string) *cobra.Command {
	var (
		n      int
		name   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [-n 20] [--name NAME] [--db FILE] [--json]",
		Short: "List runs, newest first",
		Long: `list prints the newest runs first: id, command name, start (local time),
duration, status, number of spans, LM calls, tokens and cost. A run not
ended shows as "running" while its process is alive and as "died" once it
is gone (killed or crashed without ending the run).
With --json it prints one JSON array of runs instead.`,
		Example: `  dspex traces list
  dspex traces list -n 5 --name eval --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 {
				return usageError("-n must be at least 1, got %d", n)
			}
			return runTracesList(cmd.Context(), s, *db, trace.ListOptions{Limit: n, Name: name}, asJSON)
		},
	}
	cmd.Flags().IntVarP(&n, "limit", "n", 20, "runs to list")
	cmd.Flags().StringVar(&name, "name", "", `only runs of this command ("run", "eval", "optimize", "serve")`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func newTracesShowCommand(s *streams, db *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show RUN [--db FILE] [--json]",
		Short: "Show a run: its summary, span tree and notable events",
		Long: `show prints a run's summary, then its spans as a tree (each nested under the
span it ran in): module calls with their inputs and outputs on one line each,
LM calls with model, tokens, latency, cache hit, attempts and error. Then
evaluation and optimizer summaries, when the run has them, and its notable
events: retries, breaker changes, parse failures and adapter fallbacks.

With --json it prints one JSON object holding the run, its spans, LM calls,
events, evaluation results and optimizer trials.`,
		Example: `  dspex traces show 3f2a9c
  dspex traces show 3f2a9c0d1e2b4a5c --json | jq '.lm_calls[0].messages'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTracesShow(cmd.Context(), s, *db, args[0], asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newTracesExportCommand(s *streams, db *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "export RUN [--db FILE] [--format jsonl]",
		Short: "Write everything recorded for a run as JSON lines",
		Long: `export writes one JSON object per line to standard output: the run, then each
span, LM call (with its full messages and completions), event, evaluation
result and optimizer trial. Every object has a "type" field: "run", "span",
"lm_call", "event", "eval_result" or "trial".`,
		Example: `  dspex traces export 3f2a9c > run.jsonl`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" {
				return usageError("unsupported --format %q: only jsonl is supported", format)
			}
			return runTracesExport(cmd.Context(), s, *db, args[0])
		},
	}
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format (jsonl)")
	return cmd
}

func newHistoryCommand(s *streams) *cobra.Command {
	var (
		n   int
		db  string
		run string
	)
	cmd := &cobra.Command{
		Use:   "history [-n 5] [--run RUN] [--db FILE]",
		Short: "Print the last LM calls with their full prompts and responses",
		Long: `history prints the last N LM calls recorded in the trace database — of every
run, or of one with --run — oldest first, the way DSPy's inspect_history
does: a header with the time, model, tokens and whether the cache answered,
then each message ("System message:", "User message:", "Assistant
message:") and the response. Colours are used only on a terminal (and never
with NO_COLOR set).`,
		Example: `  dspex history
  dspex history -n 1 --run 3f2a9c`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 {
				return usageError("-n must be at least 1, got %d", n)
			}
			return runHistory(cmd.Context(), s, db, run, n)
		},
	}
	cmd.Flags().IntVarP(&n, "limit", "n", 5, "LM calls to print")
	cmd.Flags().StringVar(&db, "db", "", dbFlagUsage)
	cmd.Flags().StringVar(&run, "run", "", "only this run's calls (an id or a unique prefix)")
	return cmd
}

// openTraces opens the trace database for reading; path "" means the
// default one.
func openTraces(ctx context.Context, path string) (*trace.Reader, error) {
	if path == "" {
		var err error
		if path, err = trace.DefaultPath(); err != nil {
			return nil, err
		}
	}
	r, err := trace.OpenReader(ctx, path)
	if errors.Is(err, trace.ErrNoDatabase) {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("no trace database at %s (run a program first, or pass --db)", path)}
	}
	if err != nil {
		return nil, &ExitError{Code: 1, Err: err}
	}
	return r, nil
}

// findRun resolves a run id or prefix.
func findRun(ctx context.Context, r *trace.Reader, id string) (trace.Run, error) {
	run, err := r.Run(ctx, id)
	if errors.Is(err, trace.ErrNotFound) {
		return run, &ExitError{Code: 1, Err: fmt.Errorf("no run %q in %s (dspex traces list shows the runs)", id, r.Path())}
	}
	return run, err
}

func runTracesList(ctx context.Context, s *streams, path string, opts trace.ListOptions, asJSON bool) error {
	r, err := openTraces(ctx, path)
	if err != nil {
		return err
	}
	defer r.Close()
	runs, err := r.Runs(ctx, opts)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]runJSON, len(runs))
		for i, run := range runs {
			out[i] = newRunJSON(run)
		}
		return writeJSON(s, out)
	}
	if len(runs) == 0 {
		_, err := fmt.Fprintf(s.out, "no runs in %s\n", r.Path())
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTARTED\tDURATION\tSTATUS\tSPANS\tLM CALLS\tTOKENS\tCOST")
	for _, run := range runs {
		u := run.Usage()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", run.ID, orDash(run.Name),
			run.StartedAt.Local().Format("2006-01-02 15:04:05"), humanDuration(run.Duration()), run.State(now),
			groupThousands(int64(run.Spans)), groupThousands(int64(u.Calls)),
			groupThousands(int64(u.PromptTokens+u.CompletionTokens)), cost(u))
	}
	return tw.Flush()
}

// runJSON is a run as the CLI writes it: the stored run plus its duration
// and its state now (the stored status, or "died" for a run whose process
// is gone; see trace.Run.State).
type runJSON struct {
	trace.Run
	DurationNS int64  `json:"duration_ns"`
	State      string `json:"state"`
}

func newRunJSON(r trace.Run) runJSON {
	return runJSON{Run: r, DurationNS: int64(r.Duration()), State: r.State(time.Now())}
}

// runRecord is everything stored for one run.
type runRecord struct {
	Run         runJSON             `json:"run"`
	Spans       []trace.Span        `json:"spans"`
	LMCalls     []trace.LMCall      `json:"lm_calls"`
	Events      []trace.StoredEvent `json:"events"`
	EvalResults []trace.EvalResult  `json:"eval_results"`
	Trials      []trace.Trial       `json:"trials"`
}

func readRun(ctx context.Context, r *trace.Reader, id string) (*runRecord, error) {
	run, err := findRun(ctx, r, id)
	if err != nil {
		return nil, err
	}
	rec := &runRecord{Run: newRunJSON(run)}
	if rec.Spans, err = r.Spans(ctx, run.ID); err != nil {
		return nil, err
	}
	if rec.LMCalls, err = r.LMCalls(ctx, trace.LMCallQuery{RunID: run.ID, Limit: -1}); err != nil {
		return nil, err
	}
	slices.Reverse(rec.LMCalls) // oldest first, like everything else
	if rec.Events, err = r.Events(ctx, run.ID); err != nil {
		return nil, err
	}
	if rec.EvalResults, err = r.EvalResults(ctx, run.ID); err != nil {
		return nil, err
	}
	if rec.Trials, err = r.Trials(ctx, run.ID); err != nil {
		return nil, err
	}
	return rec, nil
}

func runTracesShow(ctx context.Context, s *streams, path, id string, asJSON bool) error {
	r, err := openTraces(ctx, path)
	if err != nil {
		return err
	}
	defer r.Close()
	rec, err := readRun(ctx, r, id)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(s, rec)
	}
	w := &errWriter{w: s.out}
	writeRunSummary(w, rec)
	writeSpanTree(w, rec)
	writeEvalSummary(w, rec.EvalResults)
	writeTrialSummary(w, rec.Trials)
	writeEvents(w, rec.Events)
	return w.err
}

func writeRunSummary(w *errWriter, rec *runRecord) {
	run := rec.Run.Run
	w.printf("run       %s\n", run.ID)
	w.printf("name      %s\n", orDash(run.Name))
	if run.Program != "" {
		w.printf("program   %s\n", run.Program)
	}
	w.printf("started   %s\n", run.StartedAt.Local().Format("2006-01-02 15:04:05.000 MST"))
	if run.EndedAt.IsZero() {
		w.printf("duration  %s so far (last write %s)\n", humanDuration(run.Duration()), run.UpdatedAt.Local().Format("15:04:05"))
	} else {
		w.printf("duration  %s\n", humanDuration(run.Duration()))
	}
	status := run.State(time.Now())
	if run.Error != "" {
		status += ": " + oneLine(run.Error, 200)
	}
	w.printf("status    %s\n", status)
	u := run.Usage()
	failed := 0
	for _, c := range rec.LMCalls {
		if c.Error != "" {
			failed++
		}
	}
	w.printf("LM calls  %s (%s from cache, %s failed), %s tokens (%s prompt, %s completion), cost %s\n",
		groupThousands(int64(u.Calls)), groupThousands(int64(u.CacheHits)), groupThousands(int64(failed)),
		groupThousands(int64(u.PromptTokens+u.CompletionTokens)), groupThousands(int64(u.PromptTokens)),
		groupThousands(int64(u.CompletionTokens)), cost(u))
	w.printf("spans     %s\n", groupThousands(int64(run.Spans)))
	if len(run.Meta) > 0 {
		w.printf("meta      %s\n", oneLine(string(run.Meta), lineWidth))
	}
}

// writeSpanTree prints each span under its parent, children in start
// order. Spans whose parent is not stored (the run's root span is usually
// not a row) are roots.
func writeSpanTree(w *errWriter, rec *runRecord) {
	if len(rec.Spans) == 0 {
		return
	}
	ids := make(map[string]bool, len(rec.Spans))
	for _, sp := range rec.Spans {
		ids[sp.ID] = true
	}
	children := map[string][]int{}
	var roots []int
	for i, sp := range rec.Spans {
		if sp.ParentID != "" && ids[sp.ParentID] && sp.ParentID != sp.ID {
			children[sp.ParentID] = append(children[sp.ParentID], i)
		} else {
			roots = append(roots, i)
		}
	}
	calls := make(map[string]*trace.LMCall, len(rec.LMCalls))
	for i := range rec.LMCalls {
		calls[rec.LMCalls[i].SpanID] = &rec.LMCalls[i]
	}
	w.printf("\nSpans\n")
	shown := 0
	visited := make(map[string]bool, len(rec.Spans))
	var walk func(i, depth int)
	walk = func(i, depth int) {
		sp := &rec.Spans[i]
		if visited[sp.ID] || shown >= maxShownSpans {
			return
		}
		visited[sp.ID] = true
		shown++
		writeSpan(w, sp, calls[sp.ID], strings.Repeat("  ", depth+1))
		for _, c := range children[sp.ID] {
			walk(c, depth+1)
		}
	}
	for _, i := range roots {
		walk(i, 0)
	}
	if shown < len(rec.Spans) {
		w.printf("  ... %s more spans (dspex traces export writes them all)\n", groupThousands(int64(len(rec.Spans)-shown)))
	}
}

func writeSpan(w *errWriter, sp *trace.Span, call *trace.LMCall, indent string) {
	dur := humanDuration(sp.Duration)
	if sp.EndedAt.IsZero() {
		dur = "running"
	}
	if sp.Kind != trace.SpanLM {
		head := sp.Name
		if sp.Signature != "" {
			head += " (" + sp.Signature + ")"
		}
		w.printf("%s%s  %s\n", indent, head, dur)
		if len(sp.Inputs) > 0 {
			w.printf("%s  inputs:  %s\n", indent, oneLine(string(sp.Inputs), lineWidth))
		}
		if len(sp.Outputs) > 0 {
			w.printf("%s  outputs: %s\n", indent, oneLine(string(sp.Outputs), lineWidth))
		}
		if sp.Error != "" {
			w.printf("%s  error:   %s\n", indent, oneLine(sp.Error, lineWidth))
		}
		return
	}
	parts := []string{"LM " + sp.Name, dur}
	errText := sp.Error
	if call != nil {
		if call.Ended() {
			parts = append(parts, fmt.Sprintf("%s tokens (%s+%s)", groupThousands(int64(call.TotalTokens)),
				groupThousands(int64(call.PromptTokens)), groupThousands(int64(call.CompletionTokens))))
			parts = append(parts, "latency "+humanDuration(time.Duration(call.LatencyMS*float64(time.Millisecond))))
			if call.CacheHit {
				parts = append(parts, "cache hit")
			} else {
				parts = append(parts, "cache miss")
			}
			if call.Attempts > 0 {
				parts = append(parts, countNoun(int64(call.Attempts), "attempt", "attempts"))
			}
		}
		if call.Error != "" {
			errText = call.Error
			if call.ErrorKind != "" {
				errText = call.ErrorKind + ": " + errText
			}
		}
	}
	w.printf("%s%s\n", indent, strings.Join(parts, "  "))
	if errText != "" {
		w.printf("%s  error:   %s\n", indent, oneLine(errText, lineWidth))
	}
}

func writeEvalSummary(w *errWriter, results []trace.EvalResult) {
	if len(results) == 0 {
		return
	}
	var sum float64
	errs := 0
	for _, e := range results {
		sum += e.Score
		if e.Error != "" {
			errs++
		}
	}
	w.printf("\nEvaluation\n  %s, mean score %.3f, %s\n", countNoun(int64(len(results)), "example", "examples"),
		sum/float64(len(results)), countNoun(int64(errs), "error", "errors"))
}

func writeTrialSummary(w *errWriter, trials []trace.Trial) {
	var evaluated, best *trace.Trial
	n := 0
	for i := range trials {
		t := &trials[i]
		if t.Kind != trace.TrialEvaluated {
			continue
		}
		n++
		if t.Score != nil && (evaluated == nil || *t.Score > *evaluated.Score) {
			evaluated = t
		}
	}
	for i := range trials {
		if trials[i].Kind == trace.TrialNewBest {
			best = &trials[i]
		}
	}
	if n == 0 && best == nil {
		return
	}
	w.printf("\nOptimizer\n  %s", countNoun(int64(n), "trial", "trials"))
	switch {
	case best != nil && best.BestScore != nil:
		w.printf(", best score %s (trial %d)", fmtScore(*best.BestScore), best.Trial)
	case evaluated != nil:
		w.printf(", best score %s (trial %d)", fmtScore(*evaluated.Score), evaluated.Trial)
	}
	w.printf("\n")
}

func fmtScore(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

// routineEvent names the events that are routine rather than notable:
// counted, not listed.
func routineEvent(kind string) (label string, ok bool) {
	switch event.Kind(kind) {
	case event.LMQueueWait:
		return "pool queue waits", true
	case event.LMRateLimitWait:
		return "rate-limit waits", true
	}
	return "", false
}

func writeEvents(w *errWriter, events []trace.StoredEvent) {
	if len(events) == 0 {
		return
	}
	type wait struct {
		n     int
		total time.Duration
	}
	waits := map[string]*wait{}
	var notable []trace.StoredEvent
	for _, e := range events {
		if _, ok := routineEvent(e.Kind); ok {
			var d event.LMWait
			_ = json.Unmarshal(e.Data, &d)
			if waits[e.Kind] == nil {
				waits[e.Kind] = &wait{}
			}
			waits[e.Kind].n++
			waits[e.Kind].total += d.Wait
			continue
		}
		notable = append(notable, e)
	}
	w.printf("\nEvents\n")
	width := 0
	for _, e := range notable {
		width = max(width, len(e.Kind))
	}
	for _, e := range notable {
		w.printf("  %s  %-*s  %s\n", e.Time.Local().Format("15:04:05.000"), width, e.Kind, oneLine(describeEvent(e), lineWidth))
	}
	for _, kind := range []string{string(event.LMQueueWait), string(event.LMRateLimitWait)} {
		if wt := waits[kind]; wt != nil {
			label, _ := routineEvent(kind)
			w.printf("  %d %s, %s in all\n", wt.n, label, humanDuration(wt.total))
		}
	}
}

// describeEvent writes an event's payload for a person; kinds it does not
// know are shown as their JSON.
func describeEvent(e trace.StoredEvent) string {
	switch event.Kind(e.Kind) {
	case event.LMRetry:
		var d event.LMRetryInfo
		if json.Unmarshal(e.Data, &d) == nil {
			return fmt.Sprintf("%s attempt %d failed: %s; retrying in %s", d.Model, d.Attempt, d.Error, humanDuration(d.Wait))
		}
	case event.BreakerState:
		var d event.BreakerChange
		if json.Unmarshal(e.Data, &d) == nil {
			return fmt.Sprintf("%s: %s -> %s", d.Name, d.From, d.To)
		}
	case event.ParseFailure:
		var d event.ParseFailureInfo
		if json.Unmarshal(e.Data, &d) == nil {
			return fmt.Sprintf("%s adapter: %s", d.Adapter, d.Error)
		}
	case event.AdapterFallback:
		var d event.ParseFailureInfo
		if json.Unmarshal(e.Data, &d) == nil {
			return fmt.Sprintf("%s -> %s: %s", d.Adapter, d.Fallback, d.Error)
		}
	case event.SubscriberError:
		var d event.SubscriberProblem
		if json.Unmarshal(e.Data, &d) == nil {
			return fmt.Sprintf("%s %s (%d events dropped)", d.Subscriber, d.Problem, d.Dropped)
		}
	}
	return string(e.Data)
}

func runTracesExport(ctx context.Context, s *streams, path, id string) error {
	r, err := openTraces(ctx, path)
	if err != nil {
		return err
	}
	defer r.Close()
	rec, err := readRun(ctx, r, id)
	if err != nil {
		return err
	}
	w := &exportWriter{out: s.out}
	w.line("run", rec.Run)
	exportLines(w, "span", rec.Spans)
	exportLines(w, "lm_call", rec.LMCalls)
	exportLines(w, "event", rec.Events)
	exportLines(w, "eval_result", rec.EvalResults)
	exportLines(w, "trial", rec.Trials)
	return w.err
}

// exportWriter writes `traces export` lines: each a JSON object whose
// "type" member comes first, followed by the record's own members. It
// stops at the first error, which it keeps.
type exportWriter struct {
	out io.Writer
	buf bytes.Buffer
	err error
}

// line writes v, which encodes as a JSON object without a "type" member,
// as one line of type typ.
func (w *exportWriter) line(typ string, v any) {
	if w.err != nil {
		return
	}
	w.buf.Reset()
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	if w.err = enc.Encode(v); w.err != nil {
		return
	}
	obj := w.buf.Bytes() // {...}\n
	head := `{"type":` + strconv.Quote(typ)
	if len(obj) > 3 { // not {}
		head += ","
	}
	if _, w.err = io.WriteString(w.out, head); w.err == nil {
		_, w.err = w.out.Write(obj[1:])
	}
}

// exportLines writes each of items as a line of type typ.
func exportLines[T any](w *exportWriter, typ string, items []T) {
	for i := range items {
		w.line(typ, &items[i])
	}
}

func runHistory(ctx context.Context, s *streams, path, runID string, n int) error {
	r, err := openTraces(ctx, path)
	if err != nil {
		return err
	}
	defer r.Close()
	q := trace.LMCallQuery{Limit: n}
	if runID != "" {
		run, err := findRun(ctx, r, runID)
		if err != nil {
			return err
		}
		q.RunID = run.ID
	}
	calls, err := r.LMCalls(ctx, q)
	if err != nil {
		return err
	}
	if len(calls) == 0 {
		_, err := fmt.Fprintf(s.out, "no LM calls in %s\n", r.Path())
		return err
	}
	slices.Reverse(calls) // oldest first, as DSPy prints them
	w := &errWriter{w: s.out}
	writeHistory(w, calls, useColor(s.out))
	return w.err
}

// writeHistory prints calls the way DSPy's pretty_print_history does
// (dspy/utils/inspect_history.py), line for line; the header adds the
// model, tokens and cache hit to DSPy's timestamp.
func writeHistory(w *errWriter, calls []trace.LMCall, color bool) {
	paint := func(code, text string) string {
		if !color {
			return text
		}
		return "\x1b[" + code + "m" + text + "\x1b[0m"
	}
	blue := func(s string) string { return paint("34", s) }
	red := func(s string) string { return paint("31", s) }
	green := func(s string) string { return paint("32", s) }
	for _, c := range calls {
		w.printf("\n\n\n\n")
		header := fmt.Sprintf("[%s] %s, %s tokens (%s prompt, %s completion)", c.CreatedAt.Local().Format("2006-01-02T15:04:05.000000"),
			c.Model, groupThousands(int64(c.TotalTokens)), groupThousands(int64(c.PromptTokens)), groupThousands(int64(c.CompletionTokens)))
		if c.CacheHit {
			header += ", cache hit"
		}
		w.printf("%s\n\n", blue(header))
		for _, m := range c.Messages {
			w.printf("%s\n\n", red(capitalize(m.Role)+" message:"))
			w.printf("%s\n", strings.TrimSpace(m.Content))
			w.printf("\n\n")
		}
		switch {
		case len(c.Completions) > 0:
			w.printf("%s\n\n", red("Response:"))
			w.printf("%s\n\n", green(strings.TrimSpace(c.Completions[0])))
		case c.Error != "":
			w.printf("%s\n\n", red("Response:"))
			w.printf("%s\n\n", red("(no response: "+c.Error+")"))
		case !c.Ended():
			w.printf("%s\n\n", red("Response:"))
			w.printf("(no response yet: the call had not ended when last written)\n\n")
		}
		if len(c.Completions) > 1 {
			w.printf("%s\n", red(fmt.Sprintf(" \t (and %d other completions)", len(c.Completions)-1)))
		}
	}
	w.printf("\n\n\n\n")
}

// useColor reports whether out is a terminal that wants colours.
func useColor(out io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, _ := out.(*os.File)
	return isTerminal(f)
}

// capitalize is Python's str.capitalize: the first letter upper case, the
// rest lower.
func capitalize(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return strings.ToUpper(string(r)) + strings.ToLower(s[size:])
}

// oneLine squeezes s onto one line of at most width characters.
func oneLine(s string, width int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	runes := []rune(s)
	return string(runes[:width-1]) + "…"
}

// humanDuration writes d for a person: "350ms", "1.2s", "2m03s", "1h02m".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 0, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// cost writes a run's cost: "-" without calls, "?" when no price was
// known, a trailing "+" when some calls' prices were unknown.
func cost(u trace.Totals) string {
	switch {
	case u.Calls == 0:
		return "-"
	case u.CostUnknownCalls > 0 && u.CostUSD == 0:
		return "?"
	}
	digits := 4
	if u.CostUSD >= 1 {
		digits = 2
	}
	s := "$" + strconv.FormatFloat(u.CostUSD, 'f', digits, 64)
	if u.CostUnknownCalls > 0 {
		s += "+"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errWriter remembers the first write error, so that printing code stays
// readable.
type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) printf(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.w, format, args...)
	}
}
