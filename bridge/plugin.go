package bridge

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/sandbox"
)

// State is where a plugin is in its life.
type State int32

const (
	// StateNotStarted: created, waiting for its first call (lazy start).
	StateNotStarted State = iota
	// StateStarting: a process is being started.
	StateStarting
	// StateRunning: a process is up and passed its first health check.
	StateRunning
	// StateDown: the process ended or was killed; a restart is pending.
	StateDown
	// StateGaveUp: too many restarts; the plugin stays down.
	StateGaveUp
	// StateStopped: shut down.
	StateStopped
)

var stateNames = [...]string{"not started", "starting", "running", "down", "gave up", "stopped"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Options say where a plugin reports.
type Options struct {
	// Bus receives the plugin's lifecycle (event.PluginStart, ...), health,
	// breaker and log events. Nil publishes nothing.
	Bus *event.Bus
	// Span places the events, e.g. in the run that owns the plugin.
	Span event.Span
	// LogLevel is the least level of the plugin's log lines that are
	// published. Default hclog.Debug, which keeps raw stderr text (a Python
	// traceback): go-plugin logs non-JSON stderr lines at Debug.
	LogLevel hclog.Level
	// UnsafeNoSandbox lets every plugin marked sandbox run WITHOUT
	// isolation when no sandbox can be created (as PluginSpec's
	// UnsafeNoSandbox does for one); each such start is logged as a
	// warning. Default false: such plugins fail to start.
	UnsafeNoSandbox bool
}

// controllerShutdown is go-plugin's GRPCController method that asks a
// plugin to stop (its request and response are google.protobuf.Empty on the
// wire).
const controllerShutdown = "/plugin.GRPCController/Shutdown"

// grpcPluginName is the one entry in the go-plugin plugin set.
const grpcPluginName = "dspex"

// connPlugin is the go-plugin GRPCPlugin of every DSPEx plugin: on the host
// it hands back the connection itself, since callers use the generated
// clients; in a Go plugin (Serve) it registers the plugin's services.
type connPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	register func(*grpc.Server)
}

var _ plugin.GRPCPlugin = (*connPlugin)(nil)

func (c *connPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if c.register != nil {
		c.register(s)
	}
	return nil
}

func (c *connPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return conn, nil
}

// generation is one process of a plugin, from launch to reaping.
type generation struct {
	n       int
	client  *plugin.Client
	conn    *grpc.ClientConn
	tail    *stderrTail
	started time.Time

	mu     sync.Mutex
	runner *procRunner
	killed bool
	phase  string
}

// setRunner records the runner go-plugin asked for; one killed before it
// existed starts killed.
func (g *generation) setRunner(r *procRunner) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.runner = r
	if g.killed {
		_ = r.Kill(context.Background())
	}
}

func (g *generation) getRunner() *procRunner {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runner
}

// kill sends SIGKILL to the process group (or makes sure it never starts).
func (g *generation) kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.killed = true
	if g.runner != nil {
		_ = g.runner.Kill(context.Background())
	}
}

func (g *generation) setPhase(p string) {
	g.mu.Lock()
	g.phase = p
	g.mu.Unlock()
}

func (g *generation) getPhase() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.phase
}

// launched reports whether the process was started (and so will be reaped).
func (g *generation) launched() bool {
	r := g.getRunner()
	return r != nil && r.isStarted()
}

// exited is closed when the process has been reaped. Only for launched
// generations.
func (g *generation) exited() <-chan struct{} { return g.getRunner().exited }

// status is how the process ended; valid once exited is closed.
func (g *generation) status() ExitStatus {
	r := g.getRunner()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (g *generation) pid() int {
	if r := g.getRunner(); r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.pid
	}
	return 0
}

// reap ends the generation: kills the process if force, waits for it to be
// reaped, and lets go-plugin close the connection, remove the socket
// directory and end its goroutines.
func (g *generation) reap(force bool) {
	if force {
		g.kill()
	}
	if g.launched() {
		<-g.exited()
	}
	g.client.Kill()
}

// Plugin is one supervised plugin: the handle callers use (Conn, Info,
// Echo, Check) and the supervisor goroutine that keeps its process
// running. Create it with NewPlugin (or Host.Plugin) and end it with
// Shutdown, which waits for the process and every goroutine. Safe for
// concurrent use.
type Plugin struct {
	name string
	spec PluginSpec
	cfg  SupervisorConfig
	opts Options
	// exitWait bounds how long a call whose connection failed waits to
	// learn whether the process died.
	exitWait time.Duration

	life     context.Context // cancelled by Shutdown
	stop     context.CancelFunc
	startReq chan struct{}
	done     chan struct{} // closed when the supervisor goroutine ends

	shutdownOnce sync.Once
	killNow      chan struct{} // closed when a Shutdown's ctx ends: skip the grace
	killOnce     sync.Once
	shutdownErr  error // set by the supervisor before done closes

	// sandboxRep is the sandbox check's result, made on the first
	// sandboxed start.
	sandboxMu  sync.Mutex
	sandboxRep *sandbox.Report

	mu       sync.Mutex
	state    State
	gen      *generation
	cb       *gobreaker.CircuitBreaker[struct{}]
	reason   error // why the plugin is down, or gave up
	changed  chan struct{}
	everRan  bool
	starts   int
	restarts int
	since    time.Time
}

// NewPlugin creates the plugin name, to be started from spec, whose
// Command must already be resolved (Config.Spec does that: it turns
// "python" into the interpreter). Its supervisor goroutine starts now; the
// process starts on the first call, WaitReady or Start — or at once when
// cfg.Eager. The caller must call Shutdown.
func NewPlugin(name string, spec PluginSpec, cfg SupervisorConfig, opts Options) (*Plugin, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: a plugin needs a name", ErrConfig)
	}
	path, err := findExecutable(spec.Command)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: command %q not found: %w", name, spec.Command, err)
	}
	spec.Command = path
	if opts.LogLevel == hclog.NoLevel {
		opts.LogLevel = hclog.Debug
	}
	p := &Plugin{
		name: name, spec: spec, cfg: cfg.WithDefaults(), opts: opts, exitWait: exitWait,
		startReq: make(chan struct{}, 1),
		done:     make(chan struct{}),
		killNow:  make(chan struct{}),
		changed:  make(chan struct{}),
		since:    time.Now(),
	}
	p.life, p.stop = context.WithCancel(context.Background())
	p.cb = p.newBreaker()
	go p.supervise()
	if p.cfg.Eager {
		p.requestStart()
	}
	return p, nil
}

// Name is the plugin's configured name.
func (p *Plugin) Name() string { return p.name }

// Spec is the spec the plugin was created from, its command resolved.
func (p *Plugin) Spec() PluginSpec { return p.spec }

func (p *Plugin) newBreaker() *gobreaker.CircuitBreaker[struct{}] {
	bc := p.cfg.Breaker
	failures := uint32(bc.Failures)
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "plugin " + p.name,
		MaxRequests: uint32(bc.HalfOpenRequests),
		Timeout:     time.Duration(bc.OpenTimeout),
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		OnStateChange: func(name string, from, to gobreaker.State) {
			p.publish(event.BreakerState, &event.BreakerChange{Name: name, From: from.String(), To: to.String()})
		},
		IsSuccessful: func(err error) bool {
			return err == nil || !(errors.Is(err, ErrPluginExited) || errors.Is(err, ErrPluginDown))
		},
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrClosed)
		},
	})
}

// publish sends an event about the plugin to the bus, if anyone wants it.
func (p *Plugin) publish(kind event.Kind, data any) {
	b := p.opts.Bus
	if b == nil || !b.Wants(kind) {
		return
	}
	s := p.opts.Span
	b.Publish(event.Event{Kind: kind, Time: time.Now(), RunID: s.RunID, SpanID: s.SpanID, ParentID: s.ParentID, Data: data})
}

// setState moves to state; a non-nil reason replaces the recorded one.
// Nothing leaves StateStopped.
func (p *Plugin) setState(state State, reason error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setStateLocked(state, reason)
}

func (p *Plugin) setStateLocked(state State, reason error) {
	if p.state == StateStopped {
		return
	}
	if reason != nil {
		p.reason = reason
	}
	if state != StateRunning {
		p.gen = nil
	}
	p.state, p.since = state, time.Now()
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Plugin) requestStart() {
	select {
	case p.startReq <- struct{}{}:
	default:
	}
}

// supervise is the supervisor goroutine: start, watch, restart or give
// up, until Shutdown.
func (p *Plugin) supervise() {
	defer close(p.done)
	select {
	case <-p.startReq:
	case <-p.life.Done():
		return
	}
	var recent []time.Time // restarts within the window
	for {
		gen, err := p.startGeneration()
		var reason error
		if err != nil {
			if p.life.Err() != nil {
				return
			}
			reason = err
			p.setState(StateDown, reason)
			p.publishExit(gen, reason)
		} else {
			reason = p.watch(gen)
			if reason == nil { // Shutdown
				p.shutdownErr = p.stopGeneration(gen)
				p.publishExit(gen, nil)
				return
			}
			p.setState(StateDown, reason)
			gen.reap(false)
			p.publishExit(gen, reason)
		}

		now := time.Now()
		window := time.Duration(p.cfg.RestartWindow)
		kept := recent[:0]
		for _, t := range recent {
			if now.Sub(t) < window {
				kept = append(kept, t)
			}
		}
		recent = kept
		if p.cfg.MaxRestarts < 0 || len(recent) >= p.cfg.MaxRestarts {
			detail := fmt.Sprintf("after %d restarts within %s; last failure", len(recent), window)
			if p.cfg.MaxRestarts < 0 {
				detail = "(restarts are disabled); failure"
			}
			gaveUp := &Error{Plugin: p.name, Kind: ErrGaveUp, Detail: detail, Err: reason}
			p.setState(StateGaveUp, gaveUp)
			p.publish(event.PluginGiveUp, &event.PluginInfo{Plugin: p.name, Generation: gen.n, State: StateGaveUp.String(),
				Restarts: len(recent), Reason: reason.Error(), Error: gaveUp.Error()})
			return
		}
		recent = append(recent, now)
		delay := p.cfg.backoff(len(recent))
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-p.life.Done():
			timer.Stop()
			return
		}
		p.mu.Lock()
		p.restarts++
		p.mu.Unlock()
		p.publish(event.PluginRestart, &event.PluginInfo{Plugin: p.name, Generation: gen.n + 1, State: StateStarting.String(),
			Restarts: len(recent), Backoff: delay, Reason: reason.Error()})
	}
}

// publishExit reports the end of gen (reason nil: shut down).
func (p *Plugin) publishExit(gen *generation, reason error) {
	info := &event.PluginInfo{Plugin: p.name, Generation: gen.n, Pid: gen.pid(), State: p.State().String(), Reason: "shutdown"}
	if reason != nil {
		info.Reason = reason.Error()
	}
	if gen.launched() {
		st := gen.status()
		info.Exit, info.ExitCode, info.Signal = st.String(), st.Code, st.Signal
		info.Duration = time.Since(gen.started)
	}
	p.publish(event.PluginExit, info)
}

// startGeneration launches a process and connects to it, within
// StartTimeout. On failure the process is gone when it returns.
func (p *Plugin) startGeneration() (*generation, error) {
	p.mu.Lock()
	p.starts++
	gen := &generation{n: p.starts, tail: newStderrTail(3), started: time.Now(), phase: "waiting for the handshake"}
	p.setStateLocked(StateStarting, nil)
	p.mu.Unlock()

	logger := &busLogger{sink: &logSink{plugin: p.name, stderrLogger: filepath.Base(p.name), level: p.opts.LogLevel, pub: p.publish}}
	stdio := &lineWriter{fn: func(line string) { logger.Named(p.name).Info(line) }}
	gen.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  plugin.HandshakeConfig{MagicCookieKey: MagicCookieKey, MagicCookieValue: MagicCookieValue},
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: {grpcPluginName: &connPlugin{}}},
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, socketDir string) (runner.Runner, error) {
			r, err := p.newRunner(p.life, cmd.Env, socketDir)
			if err != nil {
				return nil, err
			}
			gen.setRunner(r)
			return r, nil
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		StartTimeout:     time.Duration(p.cfg.StartTimeout),
		Stderr:           gen.tail,
		SyncStdout:       stdio,
		SyncStderr:       stdio,
		AutoMTLS:         false,
	})

	ctx, cancel := context.WithTimeout(p.life, time.Duration(p.cfg.StartTimeout))
	defer cancel()
	type result struct {
		conn *grpc.ClientConn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		conn, err := p.connect(ctx, gen)
		res <- result{conn, err}
	}()
	var r result
	select {
	case r = <-res:
	case <-ctx.Done():
		gen.kill()
		r = <-res
	}
	if r.err == nil && ctx.Err() == nil {
		gen.conn = r.conn
		p.mu.Lock()
		if p.state == StateStopped {
			p.mu.Unlock()
			gen.reap(true)
			return gen, ErrClosed
		}
		p.gen, p.everRan, p.cb = gen, true, p.newBreaker()
		p.setStateLocked(StateRunning, nil)
		p.reason = nil
		p.mu.Unlock()
		p.publish(event.PluginStart, &event.PluginInfo{Plugin: p.name, Generation: gen.n, Pid: gen.pid(),
			Command: p.spec.CommandLine(), State: StateRunning.String(), Duration: time.Since(gen.started)})
		return gen, nil
	}
	gen.reap(true)
	return gen, p.startError(ctx, gen, r.err)
}

// connect completes the handshake, dials, and runs the first health check.
func (p *Plugin) connect(ctx context.Context, gen *generation) (*grpc.ClientConn, error) {
	if _, err := gen.client.Start(); err != nil {
		return nil, err
	}
	gen.setPhase("connecting")
	rpc, err := gen.client.Client()
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	raw, err := rpc.Dispense(grpcPluginName)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	conn, ok := raw.(*grpc.ClientConn)
	if !ok {
		return nil, fmt.Errorf("connect: go-plugin handed out %T, not a gRPC connection", raw)
	}
	gen.setPhase("waiting for the first health check")
	hctx, cancel := context.WithTimeout(ctx, time.Duration(p.cfg.HealthTimeout))
	defer cancel()
	if err := checkHealth(hctx, conn); err != nil {
		return nil, &healthError{err}
	}
	return conn, nil
}

// healthError marks a failed first health check.
type healthError struct{ err error }

func (e *healthError) Error() string { return "first health check: " + e.err.Error() }
func (e *healthError) Unwrap() error { return e.err }

// startError explains a failed start of gen, whose process is gone.
func (p *Plugin) startError(ctx context.Context, gen *generation, err error) error {
	if p.life.Err() != nil {
		return &Error{Plugin: p.name, Op: "start", Kind: ErrClosed}
	}
	e := &Error{Plugin: p.name, Op: "start", Stderr: gen.tail.String()}
	var st *ExitStatus
	if gen.launched() {
		s := gen.status()
		st = &s
	}
	var he *healthError
	switch {
	case ctx.Err() != nil:
		e.Kind = ErrStartTimeout
		e.Detail = fmt.Sprintf("after %s %s; killed", time.Duration(p.cfg.StartTimeout), gen.getPhase())
	case st != nil && (st.Signal == "" || !st.ByHost):
		// It ended by itself: an exit code, or a signal the host did not send.
		e.Kind, e.Exit = ErrPluginExited, st
		e.Detail = "before the handshake"
		if gen.getPhase() != "waiting for the handshake" {
			e.Detail = "while " + gen.getPhase()
		}
	case errors.As(err, &he):
		e.Kind, e.Err = ErrUnhealthy, err
	case st == nil:
		e.Err = err // it never launched: the error says why
	default:
		e.Kind = ErrHandshake
		msg := err.Error()
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		e.Err = fmt.Errorf("%s (%s)", truncate(msg, 300), gen.getRunner().Diagnose(ctx))
	}
	return e
}

// watch follows a running generation until its process ends, it fails
// HealthFailures health checks in a row (it is then killed), or Shutdown
// (nil).
func (p *Plugin) watch(gen *generation) error {
	var tick <-chan time.Time
	if p.cfg.HealthInterval > 0 {
		t := time.NewTicker(time.Duration(p.cfg.HealthInterval))
		defer t.Stop()
		tick = t.C
	}
	failures := 0
	for {
		select {
		case <-p.life.Done():
			return nil
		case <-gen.exited():
			st := gen.status()
			return &Error{Plugin: p.name, Op: "run", Kind: ErrPluginExited, Exit: &st, Stderr: gen.tail.String()}
		case <-tick:
		}
		ctx, cancel := context.WithTimeout(p.life, time.Duration(p.cfg.HealthTimeout))
		start := time.Now()
		err := checkHealth(ctx, gen.conn)
		cancel()
		if p.life.Err() != nil {
			return nil
		}
		if err == nil {
			if failures > 0 {
				p.publish(event.PluginHealth, &event.PluginInfo{Plugin: p.name, Generation: gen.n, Pid: gen.pid(),
					State: StateRunning.String(), Duration: time.Since(start)})
			}
			failures = 0
			continue
		}
		failures++
		p.publish(event.PluginHealth, &event.PluginInfo{Plugin: p.name, Generation: gen.n, Pid: gen.pid(),
			State: StateRunning.String(), Failures: failures, Duration: time.Since(start), Error: err.Error()})
		if failures >= p.cfg.HealthFailures {
			gen.kill()
			<-gen.exited()
			st := gen.status()
			return &Error{Plugin: p.name, Op: "health check", Kind: ErrUnhealthy,
				Detail: fmt.Sprintf("after %d failed checks in a row", failures), Exit: &st, Err: err}
		}
	}
}

// stopGeneration shuts gen down for Shutdown: it asks the plugin to stop
// (GRPCController.Shutdown), waits up to ShutdownTimeout for it to exit,
// then kills it. It returns an error when the process had to be killed.
func (p *Plugin) stopGeneration(gen *generation) error {
	grace, cancel := context.WithTimeout(context.Background(), time.Duration(p.cfg.ShutdownTimeout))
	defer cancel()
	stopRPC := make(chan struct{})
	go func() {
		defer close(stopRPC)
		rpcCtx, cancel := context.WithCancel(grace)
		defer cancel()
		go func() {
			select {
			case <-p.killNow:
				cancel()
			case <-rpcCtx.Done():
			}
		}()
		_ = gen.conn.Invoke(rpcCtx, controllerShutdown, &emptypb.Empty{}, &emptypb.Empty{})
	}()
	var err error
	select {
	case <-gen.exited():
	case <-grace.Done():
		err = &Error{Plugin: p.name, Op: "shutdown", Detail: fmt.Sprintf("still running %s after the shutdown request; killed", time.Duration(p.cfg.ShutdownTimeout))}
		gen.kill()
	case <-p.killNow:
		err = &Error{Plugin: p.name, Op: "shutdown", Detail: "context ended before the plugin exited; killed"}
		gen.kill()
	}
	cancel()
	<-stopRPC
	gen.reap(false)
	return err
}

// WaitReady starts the plugin if it is not started and waits until it is
// running, it gives up (the ErrGaveUp error), it is shut down (ErrClosed)
// or ctx ends. Use it to wait for a restart.
func (p *Plugin) WaitReady(ctx context.Context) error {
	for {
		p.mu.Lock()
		switch p.currentState() {
		case StateRunning:
			p.mu.Unlock()
			return nil
		case StateGaveUp:
			err := p.reason
			p.mu.Unlock()
			return err
		case StateStopped:
			p.mu.Unlock()
			return &Error{Plugin: p.name, Op: "wait for start", Kind: ErrClosed}
		case StateNotStarted:
			p.requestStart()
		}
		ch, reason := p.changed, p.reason
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return &Error{Plugin: p.name, Op: "wait for start", Kind: ctx.Err(), Err: reason}
		}
	}
}

// Start is WaitReady: it starts the plugin and waits until it runs.
func (p *Plugin) Start(ctx context.Context) error { return p.WaitReady(ctx) }

// acquire returns the running generation and its breaker for a call. The
// first start is waited for (within ctx); once the plugin has run, a
// plugin that is down fails fast with ErrPluginDown.
func (p *Plugin) acquire(ctx context.Context, method string) (*generation, *gobreaker.CircuitBreaker[struct{}], error) {
	op := "call " + method
	for {
		p.mu.Lock()
		switch p.currentState() {
		case StateRunning:
			gen, cb := p.gen, p.cb
			p.mu.Unlock()
			return gen, cb, nil
		case StateGaveUp:
			err := p.reason
			p.mu.Unlock()
			return nil, nil, err
		case StateStopped:
			p.mu.Unlock()
			return nil, nil, &Error{Plugin: p.name, Op: op, Kind: ErrClosed}
		case StateNotStarted:
			p.requestStart()
		case StateStarting, StateDown:
			if p.everRan {
				reason := p.reason
				p.mu.Unlock()
				return nil, nil, &Error{Plugin: p.name, Op: op, Kind: ErrPluginDown, Detail: "and restarting; last failure", Err: reason}
			}
		}
		ch, reason := p.changed, p.reason
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, &Error{Plugin: p.name, Op: op, Kind: ctx.Err(), Detail: "while waiting for the plugin to start", Err: reason}
		}
	}
}

// currentState is the state, except that a running process that has
// exited counts as down even before the supervisor has seen it go, so
// that no call is sent to a dead process and WaitReady waits for the
// restart. Call with p.mu held.
func (p *Plugin) currentState() State {
	if p.state == StateRunning {
		select {
		case <-p.gen.exited():
			return StateDown
		default:
		}
	}
	return p.state
}

// stopped reports whether Shutdown has begun.
func (p *Plugin) stopped() bool { return p.life.Err() != nil }

// Shutdown stops the plugin: it asks the process to stop
// (GRPCController.Shutdown), kills it if it is still running after
// ShutdownTimeout, or at once when ctx ends, and waits until the process is
// reaped and every goroutine of the plugin has ended — waiting on past
// ctx's end only for that, which SIGKILL makes prompt. Calls in flight
// fail with ErrClosed. It returns an error when the process had to be
// killed. Safe to call more than once.
func (p *Plugin) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() {
		p.mu.Lock()
		p.setStateLocked(StateStopped, nil)
		p.mu.Unlock()
		p.stop()
	})
	select {
	case <-p.done:
	case <-ctx.Done():
		p.killOnce.Do(func() { close(p.killNow) })
		<-p.done
	}
	return p.shutdownErr
}

// Status is a snapshot of a plugin.
type Status struct {
	Name  string `json:"name"`
	State State  `json:"state"`
	// Since is when the plugin entered State.
	Since time.Time `json:"since"`
	Pid   int       `json:"pid,omitempty"`
	// Starts counts processes started; Restarts, restarts.
	Starts   int `json:"starts"`
	Restarts int `json:"restarts"`
	// Breaker is the circuit breaker's state: "closed", "open", "half-open".
	Breaker string `json:"breaker"`
	// LastError is why the plugin is down or gave up.
	LastError string `json:"last_error,omitempty"`
}

// State is the plugin's current state.
func (p *Plugin) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.currentState()
}

// Status returns a snapshot of the plugin.
func (p *Plugin) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{Name: p.name, State: p.currentState(), Since: p.since, Starts: p.starts, Restarts: p.restarts, Breaker: p.cb.State().String()}
	if p.gen != nil {
		s.Pid = p.gen.pid()
	}
	if p.reason != nil && p.state != StateRunning {
		s.LastError = p.reason.Error()
	}
	return s
}

// Pid is the running process's id, 0 when none runs.
func (p *Plugin) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen == nil {
		return 0
	}
	return p.gen.pid()
}
