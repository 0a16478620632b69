package codeact

import "time"

import "github.com/dspex/dspex/core/event"

// Event kinds this package publishes.
const (
	// ExecuteStart: code is sent to an interpreter (*ExecutionInfo, with
	// Code and Interpreter).
	ExecuteStart event.Kind = "codeact.execute.start"
	// ExecuteEnd: an execution ended (*ExecutionInfo, complete).
	ExecuteEnd event.Kind = "codeact.execute.end"
	// ToolCallEnd: a tool call made by running code ended (*ToolCallInfo).
	ToolCallEnd event.Kind = "codeact.tool_call"
)

// ExecutionInfo describes one execution.
type ExecutionInfo struct {
	// Interpreter names the plugin process ("interpreter#3").
	Interpreter string `json:"interpreter"`
	Session     string `json:"session,omitempty"`
	Code        string `json:"code"`
	// Outcome is "ok", "submitted" or "error".
	Outcome   string        `json:"outcome,omitempty"`
	ErrorType string        `json:"error_type,omitempty"`
	Error     string        `json:"error,omitempty"`
	KilledBy  string        `json:"killed_by,omitempty"`
	StateLost bool          `json:"state_lost,omitempty"`
	ToolCalls int           `json:"tool_calls,omitempty"`
	Duration  time.Duration `json:"duration,omitempty"`
}

// ToolCallInfo describes one tool call made by running code.
type ToolCallInfo struct {
	Interpreter string `json:"interpreter"`
	Tool        string `json:"tool"`
	// Args is the arguments' JSON as the code sent it.
	Args string `json:"args"`
	// Result is the result's JSON (cut to 4 KiB), empty on error.
	Result   string        `json:"result,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}
