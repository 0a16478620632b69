package codeact

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dspex/dspex/bridge"
	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/tool"
)

// Defaults of Config.
const (
	DefaultWarm    = 1
	DefaultMax     = 8
	DefaultTimeout = 30 * time.Second
	DefaultMaxUses = 100
)

// Config configures a Pool. The zero value works: the built-in registry's
// interpreter plugin, one warm interpreter, at most eight.
type Config struct {
	// Plugins is the plugin registry (a program file's plugins: section
	// over the built-ins). Default: bridge.DefaultConfig().
	Plugins *bridge.Config
	// Plugin names the plugin that serves the "interpreter" capability;
	// default: the one the registry resolves.
	Plugin string
	// Warm is how many idle interpreters the pool keeps started once it is
	// first used. Default DefaultWarm; negative keeps none.
	Warm int
	// Max bounds the interpreters alive at once, idle and in use. Acquire
	// waits (within its context) while that many are. Default DefaultMax.
	Max int
	// Timeout bounds each execution's wall-clock time. Default
	// DefaultTimeout; negative means none.
	Timeout time.Duration
	// MaxUses retires an interpreter after this many executions, however
	// well they went. Default DefaultMaxUses.
	MaxUses int
	// Session sets the output limits of every session.
	Session SessionOptions
	// ReuseAcrossSessions gives an interpreter whose session ran code to
	// later sessions (after stopping the session). Default false: an
	// interpreter serves one session, and is discarded when that session
	// closes, because code can change its process in ways a fresh
	// namespace does not undo (replace an attribute of a module or of
	// builtins, leave a thread running that reads later sessions' data).
	// A warm spare takes its place. Set it only where every session's code
	// is trusted alike.
	ReuseAcrossSessions bool
	// LazyRestart moves a session whose interpreter was discarded (a
	// limit, a crash) to a fresh one at its next Execute rather than at
	// once: for callers that may run no other execution (dspex exec),
	// which then do not pay for a start they do not use. Default false:
	// at once, so that the next execution does not wait for a start.
	LazyRestart bool
	// Bus receives the plugin processes' lifecycle events (bridge).
	Bus *event.Bus
}

func (c Config) withDefaults() Config {
	if c.Plugins == nil {
		d := bridge.DefaultConfig()
		c.Plugins = &d
	}
	if c.Warm == 0 {
		c.Warm = DefaultWarm
	}
	if c.Warm < 0 {
		c.Warm = 0
	}
	if c.Max <= 0 {
		c.Max = DefaultMax
	}
	c.Warm = min(c.Warm, c.Max)
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		c.Timeout = 0
	}
	if c.MaxUses <= 0 {
		c.MaxUses = DefaultMaxUses
	}
	return c
}

// Pool starts, hands out and replaces interpreters. Safe for concurrent
// use. Nothing starts before the first Acquire (or Warmup).
type Pool struct {
	cfg  Config
	name string
	spec bridge.PluginSpec
	sup  bridge.SupervisorConfig
	seq  atomic.Int64

	mu       sync.Mutex
	idle     []*Interpreter
	all      map[*Interpreter]struct{}
	live     int // interpreters started or starting and not yet killed
	starting int
	closed   bool
	changed  chan struct{}

	wg sync.WaitGroup
	// life ends when the pool closes; background starts use it.
	life context.Context
	stop context.CancelFunc
}

// NewPool resolves the interpreter plugin in cfg's registry and returns a
// pool for it. It starts nothing.
func NewPool(cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	name, err := cfg.Plugins.Resolve(Capability, cfg.Plugin)
	if err != nil {
		return nil, fmt.Errorf("codeact: %w", err)
	}
	spec, err := cfg.Plugins.Spec(name)
	if err != nil {
		return nil, fmt.Errorf("codeact: %w", err)
	}
	sup := cfg.Plugins.Supervisor.WithDefaults()
	// A dead interpreter is replaced by the pool, with a fresh name, never
	// restarted in place: its sessions died with it.
	sup.MaxRestarts = -1
	sup.Eager = false
	life, stop := context.WithCancel(context.Background())
	return &Pool{cfg: cfg, name: name, spec: spec, sup: sup, all: map[*Interpreter]struct{}{},
		changed: make(chan struct{}), life: life, stop: stop}, nil
}

// Spec is the plugin's resolved spec (its command, arguments, sandbox flag).
func (p *Pool) Spec() bridge.PluginSpec { return p.spec }

// Timeout is the per-execution timeout sessions use (0: none).
func (p *Pool) Timeout() time.Duration { return p.cfg.Timeout }

// notifyLocked wakes everything waiting for a change. Call with p.mu held.
func (p *Pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// launch starts one interpreter process and waits until it serves.
func (p *Pool) launch(ctx context.Context) (*Interpreter, error) {
	name := fmt.Sprintf("%s#%d", p.name, p.seq.Add(1))
	pl, err := bridge.NewPlugin(name, p.spec, p.sup, bridge.Options{Bus: p.cfg.Bus})
	if err != nil {
		return nil, fmt.Errorf("codeact: start interpreter %s: %w", name, err)
	}
	it := &Interpreter{name: name, plugin: pl, rpc: pluginv1.NewInterpreterClient(pl.Conn())}
	if err := pl.WaitReady(ctx); err != nil {
		it.kill()
		return nil, fmt.Errorf("codeact: start interpreter %s: %w", name, err)
	}
	return it, nil
}

// Warmup starts interpreters until Warm are idle (in the background).
func (p *Pool) Warmup() { p.refill() }

// refill starts interpreters in the background until Warm are idle or
// starting, within Max.
func (p *Pool) refill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closed && p.live < p.cfg.Max && len(p.idle)+p.starting < p.cfg.Warm {
		p.live++
		p.starting++
		p.wg.Go(func() {
			it, err := p.launch(p.life)
			p.mu.Lock()
			defer p.mu.Unlock()
			p.starting--
			switch {
			case err != nil:
				// Acquire, which waits while a start is under way, then
				// starts one itself and returns its error.
				p.live--
			case p.closed:
				p.live--
				p.wg.Go(it.kill)
			default:
				p.all[it] = struct{}{}
				p.idle = append(p.idle, it)
			}
			p.notifyLocked()
		})
	}
}

// Acquire returns an idle interpreter, starting one when none is idle and
// fewer than Max are alive, or waiting for one otherwise. Give it back
// with Release.
func (p *Pool) Acquire(ctx context.Context) (*Interpreter, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if n := len(p.idle); n > 0 {
			it := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			if it.Broken() != "" {
				p.discard(it)
				continue
			}
			p.refill()
			return it, nil
		}
		if p.starting == 0 && p.live < p.cfg.Max {
			p.live++
			p.mu.Unlock()
			it, err := p.launch(ctx)
			p.mu.Lock()
			if err != nil {
				p.live--
				p.notifyLocked()
				p.mu.Unlock()
				return nil, err
			}
			if p.closed {
				p.live--
				p.mu.Unlock()
				it.kill()
				return nil, ErrClosed
			}
			p.all[it] = struct{}{}
			p.mu.Unlock()
			p.refill()
			return it, nil
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("codeact: waiting for an interpreter: %w", ctx.Err())
		}
	}
}

// Release gives an interpreter back: a broken one, one used MaxUses
// times, or any after Close, is killed and replaced; the others wait for
// the next Acquire.
func (p *Pool) Release(it *Interpreter) {
	it.mu.Lock()
	worn := it.uses >= p.cfg.MaxUses
	it.mu.Unlock()
	if worn {
		it.breakFor("used up")
	}
	p.mu.Lock()
	if it.Broken() == "" && !p.closed {
		p.idle = append(p.idle, it)
		p.notifyLocked()
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.discard(it)
}

// discard kills an interpreter in the background and starts a
// replacement.
func (p *Pool) discard(it *Interpreter) {
	p.mu.Lock()
	delete(p.all, it)
	p.mu.Unlock()
	p.wg.Go(func() {
		it.kill()
		p.mu.Lock()
		p.live--
		p.notifyLocked()
		p.mu.Unlock()
		p.refill()
	})
}

// Close kills every interpreter, idle or in use, and waits for the pool's
// goroutines. Later Acquires fail with ErrClosed. Safe to call more than
// once.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	all := make([]*Interpreter, 0, len(p.all))
	for it := range p.all {
		all = append(all, it)
	}
	p.all = map[*Interpreter]struct{}{}
	p.idle = nil
	p.notifyLocked()
	p.mu.Unlock()
	p.stop()
	for _, it := range all {
		it.breakFor("pool closed")
		p.wg.Go(func() {
			it.kill()
			p.mu.Lock()
			p.live--
			p.mu.Unlock()
		})
	}
	p.wg.Wait()
	return nil
}

// Session is a persistent Python namespace with a set of Go tools, on an
// interpreter of the pool. Executions on a session run one at a time (it
// is safe for concurrent use, but serializes). Close it to give the
// interpreter back.
type Session struct {
	pool  *Pool
	tools map[string]*tool.Tool
	specs []*pluginv1.ToolSpec
	opts  SessionOptions

	mu     sync.Mutex
	it     *Interpreter
	id     string
	closed bool
}

// NewSession acquires an interpreter and starts a session on it with
// tools, whose names must be unique Python identifiers other than SUBMIT.
func (p *Pool) NewSession(ctx context.Context, tools []*tool.Tool) (*Session, error) {
	byName := make(map[string]*tool.Tool, len(tools))
	for _, t := range tools {
		if _, dup := byName[t.Name()]; dup {
			return nil, fmt.Errorf("codeact: duplicate tool name %q", t.Name())
		}
		byName[t.Name()] = t
	}
	specs, err := toolSpecs(tools)
	if err != nil {
		return nil, err
	}
	s := &Session{pool: p, tools: byName, specs: specs, opts: p.cfg.Session}
	if err := s.attach(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// attach puts the session on a fresh interpreter. Call with s.mu held (or
// before the session is shared).
func (s *Session) attach(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		it, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		id, err := it.startSession(ctx, s.specs, s.opts)
		if err != nil {
			s.pool.Release(it)
			// An interpreter that died while idle is replaced once more.
			if attempt == 0 && ctx.Err() == nil && it.Broken() != "" {
				continue
			}
			return err
		}
		s.it, s.id = it, id
		return nil
	}
}

// Interpreter is the interpreter the session runs on now (nil after Close,
// and, with Config.LazyRestart, after its interpreter was discarded until
// the next Execute).
func (s *Session) Interpreter() *Interpreter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.it
}

// Execute runs code in the session with the pool's timeout. When the code
// ends its interpreter (a timeout, a crash, a limit), the session moves to
// a fresh interpreter (at once, or at the next Execute with
// Config.LazyRestart) and the Observation says the state was lost; when
// no fresh one can be started, the Observation comes with the error. An
// error without an Observation means the code could not be run, or ctx
// ended (the interpreter, which may still be running the code, is then
// discarded).
func (s *Session) Execute(ctx context.Context, code string) (*Observation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("codeact: session closed")
	}
	if s.it == nil {
		if err := s.attach(ctx); err != nil {
			return nil, err
		}
	}
	ctx, span := event.StartSpan(ctx)
	info := &ExecutionInfo{Interpreter: s.it.name, Session: s.id, Code: code}
	event.Publish(ctx, ExecuteStart, span, info)
	obs, err := s.it.execute(ctx, s.id, code, s.pool.cfg.Timeout, s.tools)
	end := *info
	if err != nil {
		end.Outcome, end.Error = "error", err.Error()
	}
	if obs != nil {
		end.Duration, end.ToolCalls, end.KilledBy = obs.Duration, obs.ToolCalls, obs.KilledBy
		switch {
		case obs.Error != nil:
			end.Outcome, end.ErrorType, end.Error = "error", obs.Error.Type, obs.Error.Message
		case obs.Submitted:
			end.Outcome = "submitted"
		default:
			end.Outcome = "ok"
		}
	}
	var restartErr error
	if s.it.Broken() != "" {
		old := s.it
		s.it, s.id = nil, ""
		s.pool.Release(old)
		if obs != nil {
			obs.StateLost, end.StateLost = true, true
		}
		if obs != nil && !s.pool.cfg.LazyRestart {
			if restartErr = s.attach(ctx); restartErr != nil {
				restartErr = fmt.Errorf("codeact: restart the interpreter after %s: %w", obs.KilledBy, restartErr)
			}
		}
	}
	event.Publish(ctx, ExecuteEnd, span, &end)
	if err != nil {
		return nil, err
	}
	return obs, restartErr
}

// Reset clears the session's namespace; its tools stay.
func (s *Session) Reset(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("codeact: session closed")
	}
	if s.it == nil {
		// Discarded (LazyRestart): the next interpreter starts empty.
		return nil
	}
	if _, err := s.it.rpc.Reset(ctx, &pluginv1.ResetRequest{SessionId: s.id}); err != nil {
		return fmt.Errorf("codeact: reset session on %s: %w", s.it.name, err)
	}
	return nil
}

// Close stops the session and gives its interpreter back to the pool,
// which discards it if the session ran code (unless
// Config.ReuseAcrossSessions). Safe to call more than once.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.it == nil {
		return
	}
	if s.it.used() > 0 && !s.pool.cfg.ReuseAcrossSessions {
		s.it.breakFor("its session ran code")
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.it.stopSession(ctx, s.id)
	}
	s.pool.Release(s.it)
	s.it = nil
}

// ToolNames lists the session's tools, sorted.
func (s *Session) ToolNames() []string {
	names := make([]string, 0, len(s.tools))
	for n := range s.tools {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

type poolKey struct{}

// WithPool returns a context whose CodeAct and ProgramOfThought modules
// run on pool (unless given their own).
func WithPool(ctx context.Context, pool *Pool) context.Context {
	return context.WithValue(ctx, poolKey{}, pool)
}

// PoolFrom returns the context's pool, nil when none.
func PoolFrom(ctx context.Context) *Pool {
	p, _ := ctx.Value(poolKey{}).(*Pool)
	return p
}

// ErrNoPool is returned by a module that finds no interpreter pool.
var ErrNoPool = errors.New("codeact: no interpreter pool: give the module one (UsePool) or put one in the context (WithPool)")
