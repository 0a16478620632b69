package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Host is the plugin registry at run time: it creates one supervised
// Plugin per configured name on demand, resolves capabilities to plugins,
// and shuts them all down. Safe for concurrent use.
type Host struct {
	cfg  Config
	opts Options

	mu      sync.Mutex
	plugins map[string]*Plugin
	closed  bool
}

// NewHost checks cfg and returns a host for its plugins. With
// cfg.Supervisor.Eager every configured plugin is created, and so started,
// at once; otherwise each is created on its first use.
func NewHost(cfg Config, opts Options) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, opts: opts, plugins: map[string]*Plugin{}}
	if cfg.Supervisor.Eager {
		for _, name := range cfg.Names() {
			if _, err := h.Plugin(name); err != nil {
				return nil, errors.Join(err, h.Shutdown(context.Background()))
			}
		}
	}
	return h, nil
}

// Config returns the host's configuration.
func (h *Host) Config() Config { return h.cfg }

// Plugin returns the named plugin, creating it (and its supervisor) on
// first use. The errors are ErrUnknownPlugin, ErrPythonNotFound (saying
// what to run), a missing command, or ErrClosed after Shutdown.
func (h *Host) Plugin(name string) (*Plugin, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, &Error{Plugin: name, Op: "open", Kind: ErrClosed}
	}
	if p, ok := h.plugins[name]; ok {
		return p, nil
	}
	spec, err := h.cfg.Spec(name)
	if err != nil {
		return nil, err
	}
	p, err := NewPlugin(name, spec, h.cfg.Supervisor, h.opts)
	if err != nil {
		return nil, err
	}
	h.plugins[name] = p
	return p, nil
}

// ForCapability returns the plugin serving capability: override when it
// is not empty (an optimizer's own choice), else the configured one (see
// Config.Resolve).
func (h *Host) ForCapability(capability, override string) (*Plugin, error) {
	name, err := h.cfg.Resolve(capability, override)
	if err != nil {
		return nil, err
	}
	return h.Plugin(name)
}

// Status reports every configured plugin, sorted by name: the plugins in
// use as their Status says, the others as not started.
func (h *Host) Status() []Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Status, 0, len(h.cfg.Plugins))
	for _, name := range h.cfg.Names() {
		if p, ok := h.plugins[name]; ok {
			out = append(out, p.Status())
		} else {
			out = append(out, Status{Name: name, State: StateNotStarted, Breaker: "closed"})
		}
	}
	return out
}

// Shutdown shuts every plugin down concurrently (see Plugin.Shutdown) and
// waits for all of them. Later calls to Plugin fail with ErrClosed.
func (h *Host) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	plugins := make([]*Plugin, 0, len(h.plugins))
	for _, p := range h.plugins {
		plugins = append(plugins, p)
	}
	h.mu.Unlock()
	errs := make([]error, len(plugins))
	var wg sync.WaitGroup
	for i, p := range plugins {
		wg.Go(func() {
			if err := p.Shutdown(ctx); err != nil {
				errs[i] = fmt.Errorf("shut down plugin %s: %w", p.name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
