package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-plugin/runner"

	"github.com/dspex/dspex/sandbox"
)

// procRunner is go-plugin's runner.Runner for one plugin process: an
// exec.Cmd built from the spec (never through a shell), in a process group
// of its own, whose Wait records how the process ended. go-plugin calls
// Start once, Wait once from its own goroutine, and Kill any number of
// times; Kill may also come from the supervisor. Safe for concurrent use.
type procRunner struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
	// sandboxed, when set, runs the process in the OS sandbox instead of
	// cmd (which then only describes it).
	sandboxed *sandbox.Cmd

	mu                      sync.Mutex
	started, waited, killed bool
	pid                     int

	// exited is closed once the process has been reaped; status is set
	// before.
	exited chan struct{}
	status ExitStatus
}

var _ runner.Runner = (*procRunner)(nil)

// newProcRunner prepares the process for spec. env is the environment
// go-plugin prepared (the host's, the magic cookie, the socket directory);
// the spec's own variables come after it and so win.
func newProcRunner(name string, spec PluginSpec, env []string) (*procRunner, error) {
	cmd := exec.Command(spec.Command, spec.Args...)
	cmd.Env = append(env, spec.env()...)
	// The plugin gets no stdin: it must not compete with the host's user
	// for the terminal.
	cmd.Stdin = nil
	cmd.SysProcAttr = sysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &procRunner{name: name, cmd: cmd, stdout: stdout, stderr: stderr, exited: make(chan struct{})}, nil
}

// newSandboxRunner prepares the process for spec inside the sandbox made
// from cfg. env is go-plugin's environment: only its own variables (the
// magic cookie, PLUGIN_*) pass, then the spec's; nothing of the host's.
func newSandboxRunner(ctx context.Context, name string, spec PluginSpec, env []string, cfg sandbox.Config) (*procRunner, error) {
	cfg.Env = map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if k == MagicCookieKey || strings.HasPrefix(k, "PLUGIN_") {
			cfg.Env[k] = v
		}
	}
	for k, v := range spec.Env {
		cfg.Env[k] = v
	}
	sb, err := sandbox.Command(ctx, cfg, append([]string{spec.Command}, spec.Args...)...)
	if err != nil {
		return nil, err
	}
	stdout, err := sb.StdoutPipe()
	if err != nil {
		sb.Close()
		return nil, err
	}
	stderr, err := sb.StderrPipe()
	if err != nil {
		sb.Close()
		return nil, err
	}
	return &procRunner{name: name, cmd: &exec.Cmd{Path: spec.Command, Args: append([]string{spec.Command}, spec.Args...)},
		sandboxed: sb, stdout: stdout, stderr: stderr, exited: make(chan struct{})}, nil
}

var errKilledBeforeStart = errors.New("killed before it started")

// Start launches the process, unless it was killed before it could be.
func (r *procRunner) Start(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.killed {
		if r.sandboxed != nil {
			r.sandboxed.Close()
		}
		return errKilledBeforeStart
	}
	if r.sandboxed != nil {
		if err := r.sandboxed.Start(); err != nil {
			r.sandboxed.Close()
			return fmt.Errorf("launch %s in the sandbox: %w", r.cmd.Path, err)
		}
		r.started, r.pid = true, r.sandboxed.Pid()
		return nil
	}
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("launch %s: %w", r.cmd.Path, err)
	}
	r.started, r.pid = true, r.cmd.Process.Pid
	return nil
}

// Wait reaps the process and records how it ended.
func (r *procRunner) Wait(context.Context) error {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return errors.New("plugin process not started")
	}
	if r.sandboxed != nil {
		err := r.sandboxed.Wait()
		r.mu.Lock()
		r.waited = true
		r.status = sandboxExitStatus(r.pid, r.sandboxed, r.killed)
		r.mu.Unlock()
		r.sandboxed.Close()
		close(r.exited)
		return err
	}
	err := r.cmd.Wait()
	r.mu.Lock()
	r.waited = true
	r.status = exitStatus(r.pid, r.cmd.ProcessState, r.killed)
	r.mu.Unlock()
	close(r.exited)
	return err
}

// Kill sends SIGKILL to the process's group (the plugin and any children
// it started), once the process is started and until it is reaped.
func (r *procRunner) Kill(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killed = true
	if r.started && !r.waited {
		if r.sandboxed != nil {
			r.sandboxed.Kill()
		} else {
			killGroup(r.cmd.Process)
		}
	}
	return nil
}

// isStarted reports whether the process was launched (so that Wait will
// be called and exited closed).
func (r *procRunner) isStarted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}

func (r *procRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *procRunner) Stderr() io.ReadCloser { return r.stderr }

// Name is the plugin's name: go-plugin names the logger of the process's
// stderr after it.
func (r *procRunner) Name() string { return r.name }

// ID is the process id, "" before the process starts.
func (r *procRunner) ID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

// Diagnose explains the usual cause of an unreadable handshake.
func (r *procRunner) Diagnose(context.Context) string {
	return "the plugin's first line on stdout must be its handshake; print nothing before it, and send later output to stderr"
}

// The plugin runs on this machine, in the host's view of the filesystem.
func (r *procRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *procRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
