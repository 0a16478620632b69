package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/cmd/dspex/internal/dashboard"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/logging"
	"github.com/dspex/dspex/core/redact"
	"github.com/dspex/dspex/core/telemetry"
	"github.com/dspex/dspex/core/trace"
)

// observeFlags are the flags of commands that run programs: where traces
// go, how much is logged, whether progress is shown.
type observeFlags struct {
	db       string
	noTraces bool
	// tracesOptional: a trace database that cannot be opened is warned
	// about, and the command goes on without traces.
	tracesOptional bool
	logLevel       string
	logJSON        bool
	noProgress     bool

	// describeCandidate, set by optimize, makes progress show one line per
	// evaluated candidate (see progress.showCandidates); candidates is how
	// many are expected, 0 when unknown.
	describeCandidate func(id string) string
	candidates        int

	// dashboard is --dashboard's address ("" for none); dashboardToken
	// its --dashboard-token.
	dashboard      string
	dashboardToken string
}

func (f *observeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.db, "db", "", dbFlagUsage)
	cmd.Flags().BoolVar(&f.noTraces, "no-traces", false, "do not record traces")
	cmd.Flags().BoolVar(&f.tracesOptional, "traces-optional", false,
		"when the trace database cannot be opened (damaged, not a trace database, unwritable), warn and go on without traces instead of refusing to start")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "warn", "log level on standard error: trace, debug, info, warn, error, off")
	cmd.Flags().BoolVar(&f.logJSON, "log-json", false, "write logs as JSON lines")
	cmd.Flags().BoolVar(&f.noProgress, "no-progress", false, "do not show progress")
}

// checkLevel refuses a --log-level that is not one of those listed, and
// spells a valid one the way hclog and package logging both read it.
func (f *observeFlags) checkLevel() error {
	switch l := strings.ToLower(strings.TrimSpace(f.logLevel)); l {
	case "trace", "debug", "info", "warn", "error", "off":
		f.logLevel = l
	case "warning":
		f.logLevel = "warn"
	default:
		return usageError("--log-level %q: want trace, debug, info, warn, error or off", f.logLevel)
	}
	return nil
}

// observer owns a command's event bus and its subscribers: the trace
// store, logging, OpenTelemetry export and progress.
type observer struct {
	bus      *event.Bus
	store    *trace.Store
	logger   *logging.Logger
	otel     *telemetry.Exporter
	progress *progress
	dash     *dashboard.Server
	run      event.Span
	info     event.RunInfo
}

// startObserving creates the bus and its subscribers and publishes the
// run's start; a runID that is not empty continues that run instead of
// starting one. ctx comes back carrying the bus and the run's root span.
// red removes the program's secrets from the logs and the traces.
func startObserving(ctx context.Context, s *streams, f *observeFlags, info event.RunInfo, retention trace.Retention, red *redact.Redactor, runID string) (context.Context, *observer, error) {
	if err := f.checkLevel(); err != nil {
		return ctx, nil, err
	}
	o := &observer{bus: event.NewBus(), info: info}
	fail := func(err error) (context.Context, *observer, error) {
		o.close()
		return ctx, nil, err
	}
	if !f.noTraces {
		path := f.db
		if path == "" {
			p, err := trace.DefaultPath()
			if err != nil {
				return fail(fmt.Errorf("trace database: %w (pass --db or --no-traces)", err))
			}
			path = p
		}
		st, err := trace.Open(ctx, path, trace.Options{Retention: retention, Redact: red.Func()})
		switch {
		case err != nil && f.tracesOptional:
			fmt.Fprintf(s.err, "dspex: warning: %v; going on without traces (--traces-optional)\n", err)
		case err != nil:
			return fail(fmt.Errorf("%w (pass --traces-optional to go on without traces, --no-traces to record none, or --db for another file)", err))
		default:
			o.store = st
			if err := st.Attach(o.bus); err != nil {
				return fail(err)
			}
		}
	}
	if f.logLevel != "off" {
		// Commands print the errors that end inputs, requests and runs
		// themselves; the log does not repeat them at the default level.
		o.logger = logging.New(red.Writer(s.err), logging.Options{Level: f.logLevel, JSON: f.logJSON, ErrorsReported: true})
		if err := o.logger.Attach(o.bus); err != nil {
			return fail(err)
		}
	}
	exp, on, err := telemetry.FromEnv(ctx)
	if err != nil {
		return fail(fmt.Errorf("opentelemetry: %w", err))
	}
	if on {
		o.otel = exp
		if err := exp.Attach(o.bus); err != nil {
			return fail(err)
		}
	}
	if !f.noProgress {
		file, _ := s.err.(*os.File)
		o.progress = newProgress(s.err, isTerminal(file))
		if f.describeCandidate != nil {
			o.progress.showCandidates(f.describeCandidate, f.candidates)
		}
		if err := o.progress.Attach(o.bus); err != nil {
			return fail(err)
		}
	}
	ctx = event.WithBus(ctx, o.bus)
	if runID != "" {
		ctx, o.run = event.ContinueRun(ctx, runID)
	} else {
		ctx, o.run = event.StartRun(ctx)
	}
	if err := o.startDashboard(s, f, o.bus); err != nil {
		return fail(err)
	}
	event.Publish(ctx, event.RunStart, o.run, &o.info)
	return ctx, o, nil
}

// endProgress finishes the progress display, before a command prints its
// results.
func (o *observer) endProgress() {
	if o.progress != nil {
		o.progress.Close()
		o.progress = nil
	}
}

// showTrials turns on MIPROv2's trial lines (see progress.showTrials).
func (o *observer) showTrials(total int, calls func() int) {
	if o.progress != nil {
		o.progress.showTrials(total, calls)
	}
}

// progressf publishes progress of the run.
func (o *observer) progressf(ctx context.Context, label string, done, total, errs int) {
	event.Publish(ctx, event.Progress, o.run, &event.ProgressInfo{Label: label, Done: done, Total: total, Errors: errs})
}

// finish publishes the run's end with its totals and closes every
// subscriber, so that everything is written before the command returns.
func (o *observer) finish(ctx context.Context, runErr error, totals lm.Totals) error {
	end := o.info
	if runErr != nil {
		end.Error = runErr.Error()
	}
	end.Calls, end.CacheHits = totals.Calls, totals.CacheHits
	end.PromptTokens, end.CompletionTokens = totals.Usage.PromptTokens, totals.Usage.CompletionTokens
	end.CostUSD, end.CostUnknownCalls = totals.Cost.USD, totals.Cost.Unknown
	event.Publish(ctx, event.RunEnd, o.run, &end)
	return o.close()
}

func (o *observer) close() error {
	if o.progress != nil {
		o.progress.Close()
	}
	o.bus.Close()
	var errs []error
	if o.store != nil {
		if err := o.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("trace database: %w", err))
		}
	}
	if o.dash != nil {
		// After the store: open pages get the run's final state.
		if err := o.dash.Close(); err != nil {
			errs = append(errs, fmt.Errorf("dashboard: %w", err))
		}
	}
	if o.logger != nil {
		o.logger.Close()
	}
	if o.otel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := o.otel.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("opentelemetry: %w", err))
		}
	}
	return errors.Join(errs...)
}

// RunID is the run's id, as traces list it.
func (o *observer) RunID() string { return o.run.RunID }
