package cli

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/programfile"
	"github.com/dspex/dspex/core/signature"
)

type serveFlags struct {
	program       string
	state         string
	addr          string
	maxConcurrent int
	maxQueue      int
	timeout       time.Duration
	drainTimeout  time.Duration
	env           envFlags
	observe       observeFlags
}

func newServeCommand(s *streams) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve --program FILE [--state FILE] [--addr HOST:PORT]",
		Short: "Serve a program over HTTP: POST /v1/predict",
		Long: `Serve a program file (see docs/program-file.md) over HTTP, optionally with the
state (instructions, demos) an optimizer saved (--state FILE, DSPy's format).

  POST /v1/predict   body: one JSON object of the input fields
                     answer: one JSON object of the output fields
  GET  /v1/program   the signature, module kind and predictors
  GET  /healthz      {"status": "ok"}; 503 while shutting down

Errors are answered {"error": {"message": ..., "type": ...}}: 400 for a body
that is not a JSON object of exactly the input fields, 413 for a body over
1 MiB, 429 (with Retry-After) when --max-concurrent requests run and
--max-queue more wait, 502 for an LM answer that cannot be parsed or a
failing LM endpoint, 503 when the LM endpoint refuses calls, 504 past
--timeout. See docs/serve.md.

On start it prints one line to stdout, "dspex serve listening on
http://ADDR" (with the real port when --addr ends in :0). SIGINT or SIGTERM
stops it gracefully: new connections are refused, every accepted request
(running or queued) is answered, within --drain-timeout, and the command
exits 0.`,
		Example: `  dspex serve --program qa.yaml --addr 127.0.0.1:8080
  dspex serve --program qa.yaml --state qa-optimized.json --max-concurrent 16 --timeout 30s
  curl -s localhost:8080/v1/predict -d '{"question": "What is the capital of France?"}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), s, f, cmd.Flags().Changed("max-queue"))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.program, "program", "", "program file (YAML)")
	fl.StringVar(&f.state, "state", "", "program state file (JSON, DSPy's format) to load before serving")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "host:port to listen on (port 0 picks a free port)")
	fl.IntVar(&f.maxConcurrent, "max-concurrent", serve.DefaultMaxConcurrent, "predictions run at once")
	fl.IntVar(&f.maxQueue, "max-queue", 0, "predictions that may wait for a slot before 429 (default: --max-concurrent; 0 for none)")
	fl.DurationVar(&f.timeout, "timeout", serve.DefaultRequestTimeout, "deadline of each request, queue wait included")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 0, "how long shutdown waits for accepted requests (default: --timeout + 5s)")
	f.env.register(cmd)
	f.observe.register(cmd)
	f.observe.registerDashboard(cmd)
	_ = fl.MarkHidden("no-progress")
	_ = cmd.MarkFlagRequired("program")
	return cmd
}

func runServe(ctx context.Context, s *streams, f *serveFlags, queueSet bool) (err error) {
	switch {
	case f.maxConcurrent < 1:
		return usageError("--max-concurrent must be at least 1, got %d", f.maxConcurrent)
	case f.maxQueue < 0:
		return usageError("--max-queue must not be negative, got %d", f.maxQueue)
	case f.timeout <= 0:
		return usageError("--timeout must be positive, got %s", f.timeout)
	case f.drainTimeout < 0:
		return usageError("--drain-timeout must not be negative, got %s", f.drainTimeout)
	}
	spec, prog, err := loadProgram(f.program, f.state)
	if err != nil {
		return err
	}
	sig, err := servedSignature(spec)
	if err != nil {
		return err
	}
	if f.state != "" {
		sig = stateSignature(sig, prog)
	}
	maxQueue := 0 // serve's default: as many as --max-concurrent
	if queueSet {
		maxQueue = f.maxQueue
		if maxQueue == 0 {
			maxQueue = -1 // serve's "none may wait"
		}
	}
	// base is set before Serve starts, and only read by requests.
	var base context.Context
	red := spec.Redactor()
	srv, err := serve.New(serve.Config{
		Program:        prog,
		Signature:      sig,
		Module:         spec.Program.Module,
		MaxConcurrent:  f.maxConcurrent,
		MaxQueue:       maxQueue,
		RequestTimeout: f.timeout,
		DrainTimeout:   f.drainTimeout,
		BaseContext:    func() context.Context { return base },
		Redact:         red.Func(),
		ErrorLog:       log.New(red.Writer(s.err), "dspex serve: ", 0),
	})
	if err != nil {
		return err
	}

	f.observe.noProgress = true
	meta := map[string]any{"addr": f.addr, "max_concurrent": f.maxConcurrent, "max_queue": srv.Config().MaxQueue, "timeout": f.timeout.String()}
	if f.state != "" {
		meta["state"] = f.state
	}
	ctx, ss, err := startSession(ctx, s, &f.env, &f.observe, spec, event.RunInfo{Name: "serve", Program: f.program, Meta: meta}, "")
	if err != nil {
		return err
	}
	defer func() { err = ss.end(ctx, err) }()
	if err := attachAccessLog(ss.obs.bus, red.Writer(s.err), &f.observe); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", f.addr, err)
	}
	base = ctx
	if _, err := fmt.Fprintf(s.out, "dspex serve listening on %s\n", serveURL(ln.Addr())); err != nil {
		_ = ln.Close()
		return fmt.Errorf("serve: write listening line: %w", err)
	}
	flush(s.out)
	// The root cancels ctx on SIGINT and SIGTERM: that is how serving
	// ends, so it is no failure.
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	if !f.env.quiet {
		st := srv.Stats()
		fmt.Fprintf(s.err, "dspex serve: stopped; %d predictions admitted, %d refused as overloaded\n", st.Admitted, st.Refused)
	}
	return nil
}

// servedSignature is the signature requests are checked against and
// answers are written in: the program's inputs (a multi-step program's
// first step's), every output field it produces in the order dspex run
// prints them (reasoning first; a pipeline's steps in order), and the
// instructions of its module (a pipeline's last step's).
func servedSignature(spec *programfile.Spec) (*signature.Signature, error) {
	sig, err := spec.Signature()
	if err != nil {
		return nil, err
	}
	outputs, err := spec.Outputs()
	if err != nil {
		return nil, err
	}
	inputs := sig.Inputs()
	if steps := spec.Program.Steps; len(steps) > 0 {
		first := &steps[0].ModuleSpec
		for (first.Module == programfile.ModuleBestOfN || first.Module == programfile.ModuleRefine) && first.Of != nil {
			first = first.Of
		}
		fs, err := signature.Parse(first.Signature)
		if err != nil {
			return nil, fmt.Errorf("program.steps.0.signature: %w", err)
		}
		for name, d := range first.Fields {
			if next, err := fs.WithDesc(name, d.Desc); err == nil {
				fs = next
			}
		}
		inputs = fs.Inputs()
	}
	served, err := signature.New(inputs, outputs, sig.Instructions())
	if err != nil {
		return nil, fmt.Errorf("the served signature of %s: %w", spec.Program.Signature, err)
	}
	return served, nil
}

// stateSignature returns the program file's signature with the
// instructions and field descriptions a state file gave the program's
// predictor, so that /v1/program shows what is served. Programs with
// several predictors keep the file's signature.
func stateSignature(sig *signature.Signature, prog module.Program) *signature.Signature {
	nps := prog.NamedPredictors()
	if len(nps) != 1 {
		return sig
	}
	loaded := nps[0].Predictor.Signature()
	out := sig.WithInstructions(loaded.Instructions())
	for _, f := range out.Fields() {
		if lf, ok := loaded.Field(f.Name); ok && lf.Desc != f.Desc {
			if next, err := out.WithDesc(f.Name, lf.Desc); err == nil {
				out = next
			}
		}
	}
	return out
}

// serveURL is the base URL for a listening address; an unspecified host
// (0.0.0.0, ::) is written as 127.0.0.1 so that the URL can be dialled.
func serveURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// attachAccessLog logs each answered request on standard error, at the
// observe flags' level (checked by startObserving): server failures at
// error, LM refusals (503) at warn, everything else at info. Like the
// other logs it drops its oldest lines rather than slow the server down.
func attachAccessLog(bus *event.Bus, w io.Writer, f *observeFlags) error {
	level := hclog.LevelFromString(f.logLevel)
	if level == hclog.Off {
		return nil
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "dspex", Level: level, Output: w, JSONFormat: f.logJSON, JSONEscapeDisabled: true, Color: hclog.ColorOff})
	_, err := bus.Subscribe(event.SubscribeOptions{
		Name: "access log", Kinds: []event.Kind{event.HTTPRequest}, Policy: event.DropOldest, Buffer: 4096,
	}, func(ev event.Event) {
		d, ok := ev.Data.(*event.HTTPRequestInfo)
		if !ok {
			return
		}
		args := []any{"run", shortID(ev.RunID), "span", shortID(ev.SpanID), "method", d.Method, "path", d.Path,
			"status", d.Status, "duration", d.Duration.Round(time.Microsecond)}
		if d.QueueWait > 0 {
			args = append(args, "queue_wait", d.QueueWait.Round(time.Microsecond))
		}
		if d.Error != "" {
			args = append(args, "error", d.Error)
		}
		switch {
		case d.Status >= 500 && d.Status != 503:
			if d.Stack != "" {
				args = append(args, "stack", d.Stack)
			}
			logger.Error("request failed", args...)
		case d.Status == 503:
			logger.Warn("request refused by the LM endpoint", args...)
		default:
			logger.Info("request", args...)
		}
	})
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	return nil
}

// shortID is the first 8 hex digits of a run or span id, as the logs show.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
