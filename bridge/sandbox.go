package bridge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/sandbox"
)

// sandboxCheckTimeout bounds the probe that decides, once per plugin,
// whether a sandbox can be created.
const sandboxCheckTimeout = 30 * time.Second

// sandboxConfig is the sandbox a plugin marked Sandbox runs in, with the
// gRPC socket directory go-plugin made bound writable at the same path.
func (p *Plugin) sandboxConfig(socketDir string) sandbox.Config {
	cfg := sandbox.Config{
		Limits:    p.spec.SandboxLimits.limits(),
		Timeout:   -1, // the supervisor ends the process
		ReadWrite: []string{socketDir},
		ReadOnly:  slices.Clone(p.spec.SandboxReadOnly),
	}
	if strings.HasPrefix(filepath.Base(p.spec.Command), "python") {
		// Its runtime (a virtualenv, its base and sys.path: the plugin's
		// code) is what the sandbox makes visible.
		cfg.Python = p.spec.Command
	} else {
		cfg.ReadOnly = append(cfg.ReadOnly, p.spec.Command)
	}
	return cfg
}

// sandboxReport checks that a sandbox can be created with the plugin's
// interpreter. A success is kept for the plugin's later starts; a failure
// is checked again at the next start.
func (p *Plugin) sandboxReport(ctx context.Context) sandbox.Report {
	p.sandboxMu.Lock()
	defer p.sandboxMu.Unlock()
	if p.sandboxRep != nil {
		return *p.sandboxRep
	}
	ctx, cancel := context.WithTimeout(ctx, sandboxCheckTimeout)
	defer cancel()
	cfg := p.sandboxConfig(os.TempDir())
	cfg.ReadWrite = nil
	rep := sandbox.Check(ctx, cfg)
	if rep.Available {
		p.sandboxRep = &rep
		prot := rep.Protections
		p.publish(event.PluginLog, &event.PluginLogEntry{Plugin: p.name, Source: "host", Level: "info",
			Message: fmt.Sprintf("sandboxed: namespaces %s, seccomp %v, cgroup %q, host uid %d, rlimits %v",
				strings.Join(prot.Namespaces, ","), prot.Seccomp, prot.Cgroup, prot.HostUID, prot.Rlimits)})
	}
	return rep
}

// newRunner prepares the plugin's process: in the sandbox when its spec
// asks for one and one can be created; unsandboxed, with a warning, when
// none can and the spec or the host opted out; else it fails, saying why.
func (p *Plugin) newRunner(ctx context.Context, env []string, socketDir string) (*procRunner, error) {
	if !p.spec.Sandbox {
		return newProcRunner(p.name, p.spec, env)
	}
	rep := p.sandboxReport(ctx)
	if !rep.Available {
		if p.spec.UnsafeNoSandbox || p.opts.UnsafeNoSandbox {
			p.publish(event.PluginLog, &event.PluginLogEntry{Plugin: p.name, Source: "host", Level: "warn",
				Message: "no sandbox can be created (" + rep.Reason + "): running the plugin WITHOUT isolation, as unsafe_no_sandbox allows"})
			return newProcRunner(p.name, p.spec, env)
		}
		return nil, fmt.Errorf("%w: plugin %s asks for sandbox: true, but %s; install bubblewrap (make setup) where user namespaces are allowed, or set unsafe_no_sandbox: true to run it without isolation",
			sandbox.ErrUnavailable, p.name, strings.TrimPrefix(rep.Reason, sandbox.ErrUnavailable.Error()+": "))
	}
	if rep.Protections.HostUID != os.Getuid() {
		// The sandbox runs as another host uid (no cgroup as root): it
		// must be able to create its socket.
		if err := os.Chown(socketDir, rep.Protections.HostUID, sandbox.GID); err != nil {
			return nil, fmt.Errorf("sandbox: hand the socket directory to uid %d: %w", rep.Protections.HostUID, err)
		}
	}
	cfg := p.sandboxConfig(socketDir)
	cfg.Runtime = rep.Runtime // resolved once, by the check
	return newSandboxRunner(ctx, p.name, p.spec, env, cfg)
}
