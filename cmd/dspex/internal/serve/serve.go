// Package serve is the HTTP server behind `dspex serve`: it answers
// predictions of one DSPEx program as JSON over HTTP.
//
// Endpoints (see docs/serve.md for examples):
//
//   - POST /v1/predict: the body is one JSON object holding the program's
//     input fields; the answer is one JSON object holding its output fields
//     in signature order ("reasoning" first when the module adds it).
//   - GET /v1/program: the signature, module kind and predictors.
//   - GET /healthz: {"status": "ok"}, or 503 {"status": "draining"} once
//     shutdown has begun.
//
// Every error is answered as {"error": {"message", "type"}} with a status
// that says whose fault it was (see the ErrorType constants).
//
// Load is bounded: at most Config.MaxConcurrent predictions run at once and
// at most Config.MaxQueue wait for a slot; one more is refused at once with
// 429 and a Retry-After header, so that a client never hangs on an
// overloaded server. Each request runs with its own deadline
// (Config.RequestTimeout, counted from its arrival, queue wait included)
// and stops when its client goes away. Its answer must be written within
// RequestTimeout + 2s of its arrival, so a client that does not read its
// answer is cut off then. A panic in the program fails only its own
// request (500).
//
// Each request runs inside a trace span of its own (the module and LM spans
// it causes are its children) and publishes one event.HTTPRequest event on
// the base context's bus when it is answered.
//
// Serve shuts down gracefully when its context ends: it stops accepting
// connections, lets every accepted request — running or queued — finish,
// bounded by Config.DrainTimeout, and returns.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// Defaults for Config.
const (
	DefaultMaxConcurrent  = 64
	DefaultRequestTimeout = 60 * time.Second
	DefaultMaxBodyBytes   = 1 << 20
	DefaultRetryAfter     = time.Second
	// DefaultDrainGrace is added to RequestTimeout to make the default
	// DrainTimeout: every accepted request ends within RequestTimeout of
	// its arrival, and the grace leaves time to write its answer.
	DefaultDrainGrace = 5 * time.Second
)

// Connection limits of Serve's http.Server. They bound what a slow or idle
// client can hold: a request's headers must arrive within readHeaderTimeout
// and its body within readTimeout; an idle keep-alive connection is closed
// after idleTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// writeGrace is how long past its RequestTimeout a request may take
	// to write its answer: a client that does not read it is cut off
	// then, so that it holds neither a slot nor the drain. It is shorter
	// than DefaultDrainGrace, so that a default drain outlasts it.
	writeGrace = 2 * time.Second
	// cutOffWait bounds how long Serve waits, after a drain timed out and
	// the remaining connections were closed, for their handlers to return.
	cutOffWait = 5 * time.Second
)

// Config configures a Server. Program and Signature are required; every
// other field's zero value picks the default given on it.
type Config struct {
	// Program answers the predictions. It must be safe for concurrent use
	// (every DSPEx module is).
	Program module.Program
	// Signature is the program's signature: /v1/program describes it,
	// requests are checked against its input fields, and answers list its
	// output fields in its order.
	Signature *signature.Signature
	// Module names the module kind shown by /v1/program ("predict",
	// "chain_of_thought"). Default: derived from the program's Go type.
	Module string
	// MaxConcurrent is how many predictions run at once. Default 64.
	MaxConcurrent int
	// MaxQueue is how many further predictions may wait for a slot; one
	// more is answered 429 at once. Default MaxConcurrent, so that a
	// queued request waits for about one prediction's time at most; a
	// negative value lets none wait.
	MaxQueue int
	// RequestTimeout bounds each prediction, counted from the request's
	// arrival (queue wait included); past it the answer is 504. Default 60s.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies; a larger one is answered 413.
	// Default 1 MiB.
	MaxBodyBytes int64
	// RetryAfter is the wait sent in the Retry-After header of a 429.
	// Default 1s.
	RetryAfter time.Duration
	// DrainTimeout bounds Serve's graceful shutdown: requests still running
	// after it are cut off. Default RequestTimeout + DefaultDrainGrace.
	DrainTimeout time.Duration
	// BaseContext returns the context whose values every request runs
	// with: the LM and adapter (module.WithLM, module.WithAdapter), the
	// event bus and run span, usage trackers. It is called once per
	// request; its cancellation is ignored, so that requests a draining
	// server still holds can finish. Nil means context.Background.
	BaseContext func() context.Context
	// Redact removes secrets (API keys, LM header values, base URL query
	// parameters; see redact.Redactor) from the errors recorded in request
	// events, which reach logs and traces. Clients never see an LM
	// error's own text: they get its kind and the request id. Nil records
	// errors as they are.
	Redact func(string) string
	// ErrorLog receives net/http's own errors (failed accepts, malformed
	// requests) in Serve. Nil discards them.
	ErrorLog *log.Logger
}

// Server answers predictions of one program over HTTP. All its methods
// are safe for concurrent use; Serve may be called once.
type Server struct {
	cfg      Config
	slots    *lm.Slots
	draining atomic.Bool
	serving  atomic.Bool
	// inServe counts requests being handled by Serve's own http.Server,
	// so that a drain that timed out can wait for them.
	inServe atomic.Int64
}

// New checks cfg, fills in its defaults and returns a server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Program == nil:
		return nil, errors.New("serve: config has no program")
	case cfg.Signature == nil:
		return nil, errors.New("serve: config has no signature")
	case cfg.MaxConcurrent < 0:
		return nil, fmt.Errorf("serve: max concurrent must not be negative, got %d", cfg.MaxConcurrent)
	case cfg.RequestTimeout < 0:
		return nil, fmt.Errorf("serve: request timeout must not be negative, got %s", cfg.RequestTimeout)
	case cfg.MaxBodyBytes < 0:
		return nil, fmt.Errorf("serve: max body bytes must not be negative, got %d", cfg.MaxBodyBytes)
	case cfg.RetryAfter < 0:
		return nil, fmt.Errorf("serve: retry after must not be negative, got %s", cfg.RetryAfter)
	case cfg.DrainTimeout < 0:
		return nil, fmt.Errorf("serve: drain timeout must not be negative, got %s", cfg.DrainTimeout)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = cfg.MaxConcurrent
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = cfg.RequestTimeout + DefaultDrainGrace
	}
	if cfg.Module == "" {
		cfg.Module = moduleKind(cfg.Program)
	}
	// lm.Slots reads a negative queue as "none may wait".
	return &Server{cfg: cfg, slots: lm.NewSlots(lm.PoolConfig{Size: cfg.MaxConcurrent, Queue: cfg.MaxQueue})}, nil
}

// Config returns the configuration with its defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Stats are a server's load counters.
type Stats struct {
	// Running and Waiting count predictions holding a slot and waiting
	// for one.
	Running, Waiting int
	// Admitted counts predictions that got a slot; Refused those answered
	// 429; Abandoned those whose deadline or client ended while queued.
	Admitted, Refused, Abandoned int64
}

// Stats returns a snapshot of the load counters.
func (s *Server) Stats() Stats {
	p := s.slots.Stats()
	return Stats{Running: p.InFlight, Waiting: p.Waiting, Admitted: p.Admitted, Refused: p.Refused, Abandoned: p.Abandoned}
}

// Draining reports whether Serve has begun shutting down.
func (s *Server) Draining() bool { return s.draining.Load() }

// Handler returns the server's HTTP handler, for use in another
// http.Server or in tests. Requests it answers are not drained by Serve.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Serve answers requests on ln until ctx ends, then shuts down gracefully:
// it closes ln (new connections are refused), marks /healthz as draining,
// and waits for every accepted request, running or queued, to be answered,
// at most Config.DrainTimeout; requests still running then are cut off and
// reported in the error. Serve closes ln in every case. It returns nil
// after a clean drain, or the error that stopped it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if ln == nil {
		return errors.New("serve: nil listener")
	}
	if !s.serving.CompareAndSwap(false, true) {
		_ = ln.Close()
		return errors.New("serve: Serve called twice")
	}
	errLog := s.cfg.ErrorLog
	if errLog == nil {
		errLog = log.New(io.Discard, "", 0)
	}
	h := s.Handler()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.inServe.Add(1)
			defer s.inServe.Add(-1)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errLog,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-served:
		// The listener failed; drain what was accepted all the same.
		serveErr = fmt.Errorf("serve: accept on %s: %w", ln.Addr(), err)
		served <- err
	}
	s.draining.Store(true)
	drainErr := s.drain(srv)
	<-served
	return errors.Join(serveErr, drainErr)
}

// drain shuts srv down, waiting for its accepted requests; past the drain
// timeout it closes every connection, which cancels the requests still
// running, and waits a little for their handlers to return.
func (s *Server) drain(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err == nil {
		return nil
	}
	cut := s.inServe.Load()
	_ = srv.Close()
	deadline := time.Now().Add(cutOffWait)
	for s.inServe.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if left := s.inServe.Load(); left > 0 {
		return fmt.Errorf("serve: drain timed out after %s: %d requests cut off, %d of them still running", s.cfg.DrainTimeout, cut, left)
	}
	return fmt.Errorf("serve: drain timed out after %s: %d requests cut off", s.cfg.DrainTimeout, cut)
}

// moduleKind names a program's module kind as program files do.
func moduleKind(p module.Program) string {
	switch p.(type) {
	case *module.Predict:
		return "predict"
	case *module.ChainOfThought:
		return "chain_of_thought"
	case *module.Pipeline:
		return "pipeline"
	}
	name := fmt.Sprintf("%T", p)
	name = strings.TrimPrefix(name, "*")
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return name
}
