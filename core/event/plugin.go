package event

import "time"

// Plugin lifecycle kinds, published by the plugin supervisor (bridge).
const (
	PluginStart   Kind = "plugin.start"   // *PluginInfo: a process started and answered its first health check
	PluginExit    Kind = "plugin.exit"    // *PluginInfo: a process ended, or failed to start
	PluginRestart Kind = "plugin.restart" // *PluginInfo: a restart begins, after its backoff
	PluginGiveUp  Kind = "plugin.give_up" // *PluginInfo: too many restarts; the plugin stays down
	PluginLog     Kind = "plugin.log"     // *PluginLogEntry: a plugin's log line (hclog JSON or raw stderr)
	PluginHealth  Kind = "plugin.health"  // *PluginInfo: a failed health check, or the first success after failures
)

// PluginInfo is one step in a plugin's life. Which fields are set depends
// on the kind: Pid and Command on start; Exit, ExitCode, Signal and Reason
// on exit; Restarts, Backoff and Reason on restart and give-up; Failures
// and Error on health.
type PluginInfo struct {
	// Plugin is the plugin's configured name ("echo", "sampler").
	Plugin string `json:"plugin"`
	// Generation counts the plugin's process starts, from 1.
	Generation int    `json:"generation,omitempty"`
	Pid        int    `json:"pid,omitempty"`
	Command    string `json:"command,omitempty"`
	// State is the supervisor's state after the step ("running", "down",
	// "gave up", "stopped").
	State string `json:"state,omitempty"`
	// Exit says how the process ended ("exit code 3", "killed by SIGKILL").
	Exit     string `json:"exit,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	// Reason says why the step happened: the exit or start failure that
	// caused a restart, the failing health check, "shutdown".
	Reason string `json:"reason,omitempty"`
	// Restarts counts restarts within the supervisor's restart window.
	Restarts int           `json:"restarts,omitempty"`
	Backoff  time.Duration `json:"backoff,omitempty"`
	// Duration is how long the step took (a start) or lasted (a process's
	// uptime, on exit).
	Duration time.Duration `json:"duration,omitempty"`
	// Failures counts consecutive failed health checks.
	Failures int    `json:"failures,omitempty"`
	Error    string `json:"error,omitempty"`
}

// PluginLogEntry is a log line from a plugin process (its hclog JSON lines
// and other stderr output) or from the host about it.
type PluginLogEntry struct {
	Plugin string `json:"plugin"`
	// Source is "plugin" (the process's stderr) or "host" (go-plugin's own
	// messages about the process).
	Source  string         `json:"source"`
	Level   string         `json:"level"`
	Logger  string         `json:"logger,omitempty"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"fields,omitempty"`
}
