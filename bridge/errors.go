package bridge

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of plugin failure. Errors from this package wrap one of them (test
// with errors.Is); most are an *Error that also names the plugin and, where
// a process ended, how.
var (
	// ErrPluginDown: the plugin is not running (it is restarting, or its
	// breaker is open), so the call failed fast without reaching it.
	ErrPluginDown = errors.New("bridge: plugin down")
	// ErrPluginExited: the plugin's process ended (exited, crashed or was
	// killed) before it answered, or before it completed the handshake.
	ErrPluginExited = errors.New("bridge: plugin process exited")
	// ErrGaveUp: the supervisor stopped restarting the plugin after too
	// many restarts within its window. The error wraps the last exit
	// reason.
	ErrGaveUp = errors.New("bridge: plugin supervisor gave up")
	// ErrStartTimeout: the plugin did not complete its handshake and first
	// health check within the start timeout, and was killed.
	ErrStartTimeout = errors.New("bridge: plugin start timed out")
	// ErrHandshake: the plugin printed something other than a valid
	// handshake line, or offered an incompatible protocol.
	ErrHandshake = errors.New("bridge: plugin handshake failed")
	// ErrUnhealthy: the plugin failed its health checks and was killed.
	ErrUnhealthy = errors.New("bridge: plugin unhealthy")
	// ErrClosed: the plugin (or its host) has been shut down.
	ErrClosed = errors.New("bridge: plugin shut down")
)

// Error is a failure of a named plugin. It unwraps to its Kind (one of the
// sentinels above, or a context error) and to the underlying error, so
// errors.Is, errors.As and grpc's status.Code all see through it.
type Error struct {
	// Plugin is the plugin's configured name.
	Plugin string
	// Op is what failed: "start", "health check", "supervise", "shutdown"
	// or "call <full gRPC method>".
	Op   string
	Kind error
	// Detail adds to the kind ("after 5 restarts within 1m0s").
	Detail string
	// Exit says how the process ended, when it did.
	Exit *ExitStatus
	// Stderr is the end of the process's stderr, when it helps explain a
	// failed start.
	Stderr string
	Err    error
}

func (e *Error) Error() string { return "plugin " + e.Plugin + ": " + e.detail() }

// detail is the message without the plugin's name, so that an Error
// wrapping another Error of the same plugin names it once.
func (e *Error) detail() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Kind != nil {
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "bridge: "))
	}
	if e.Detail != "" {
		if e.Kind != nil {
			b.WriteString(" ")
		}
		b.WriteString(e.Detail)
	}
	if e.Exit != nil {
		fmt.Fprintf(&b, " (%s)", e.Exit)
	}
	if e.Err != nil {
		if e.Kind != nil || e.Detail != "" {
			b.WriteString(": ")
		}
		var inner *Error
		if errors.As(e.Err, &inner) && inner == e.Err && inner.Plugin == e.Plugin {
			b.WriteString(inner.detail())
		} else {
			b.WriteString(e.Err.Error())
		}
	}
	if e.Stderr != "" {
		b.WriteString("; stderr: ")
		b.WriteString(e.Stderr)
	}
	return b.String()
}

// Unwrap returns the kind and the underlying error.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// ExitStatus is how a plugin process ended.
type ExitStatus struct {
	Pid int
	// Code is the exit code, or -1 when a signal ended the process.
	Code int
	// Signal names the signal that ended the process ("SIGKILL"), if one did.
	Signal string
	// ByHost is true when the host killed the process (shutdown grace
	// passed, health checks failed, start timed out).
	ByHost bool
	// Limit names the sandbox limit that ended a sandboxed process
	// ("memory", "processes", "cpu", "file-size", "timeout"; see
	// sandbox.Result.KilledBy), "" when none did.
	Limit string
}

// String says how the process ended: "exit code 3", "killed by SIGKILL",
// "killed by SIGKILL (sandbox memory limit)".
func (s ExitStatus) String() string {
	out := fmt.Sprintf("exit code %d", s.Code)
	if s.Signal != "" {
		out = "killed by " + s.Signal
	}
	if s.Limit != "" {
		out += " (sandbox " + s.Limit + " limit)"
	}
	return out
}

// truncate bounds a message taken from a plugin.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
