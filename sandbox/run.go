package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Run runs argv in a fresh sandbox set up by cfg, feeding it stdin (nil:
// nothing), and returns its output and how it ended. A command that fails
// or is killed by a limit is not an error: Result says so. The error is
// ErrUnavailable (wrapped, with the reason) when no sandbox can be made,
// a failure to start, or ctx's error when cancelling ctx killed it.
func Run(ctx context.Context, cfg Config, stdin io.Reader, argv ...string) (Result, error) {
	res, _, err := run(ctx, cfg, stdin, argv...)
	return res, err
}

// run is Run, also returning the finished Cmd (nil if none was made).
func run(ctx context.Context, cfg Config, stdin io.Reader, argv ...string) (Result, *Cmd, error) {
	cfg = cfg.withDefaults()
	c, err := Command(ctx, cfg, argv...)
	if err != nil {
		return Result{}, nil, err
	}
	defer c.Close()
	over := func() { c.kill(KilledByOutput) }
	stdout := &capWriter{limit: cfg.OutputLimit, over: over}
	stderr := &capWriter{limit: cfg.OutputLimit, over: over}
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	start := time.Now()
	if err := c.Start(); err != nil {
		return Result{}, c, err
	}
	_ = c.Wait()
	res := Result{
		Stdout:   stdout.bytes(),
		Stderr:   stderr.bytes(),
		ExitCode: c.ExitCode(),
		Duration: time.Since(start),
		KilledBy: c.KilledBy(),
	}
	if err := setupFailure(res); err != nil {
		return res, c, err
	}
	if err := ctx.Err(); err != nil && res.KilledBy == "signal:9" {
		return res, c, fmt.Errorf("sandbox: run cancelled: %w", err)
	}
	return res, c, nil
}

// capWriter keeps the first limit bytes written and calls over, once,
// when more come. Safe for concurrent use.
type capWriter struct {
	limit int
	over  func()

	mu   sync.Mutex
	buf  []byte
	full bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	room := w.limit - len(w.buf)
	if len(p) <= room {
		w.buf = append(w.buf, p...)
		w.mu.Unlock()
		return len(p), nil
	}
	w.buf = append(w.buf, p[:max(room, 0)]...)
	first := !w.full
	w.full = true
	w.mu.Unlock()
	if first {
		w.over()
	}
	// Report success so the copying goroutine keeps draining the pipe
	// until the killed command closes it.
	return len(p), nil
}

func (w *capWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]byte(nil), w.buf...)
}

// setupFailure recognises a sandbox that failed before the command ran:
// bwrap's own error (exit status 1, "bwrap: ..." on stderr) or the limits
// helper's (exit status 125).
func setupFailure(res Result) error {
	for _, s := range []struct {
		code   int
		prefix string
	}{{1, "bwrap: "}, {helperFailedCode, helperName + ": "}} {
		if res.ExitCode == s.code && bytes.HasPrefix(res.Stderr, []byte(s.prefix)) {
			msg, _, _ := strings.Cut(string(res.Stderr), "\n")
			return fmt.Errorf("%w: %s", ErrUnavailable, msg)
		}
	}
	return nil
}
