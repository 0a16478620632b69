package codeact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dspex/dspex/bridge"
	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/tool"
)

// Capability is the capability the interpreter plugin serves.
const Capability = "interpreter"

// PluginName is the name of the built-in interpreter plugin.
const PluginName = bridge.InterpreterPlugin

// Limits an execution can hit, as Observation.KilledBy names them.
const (
	KilledByTimeout   = "timeout"   // the execution's timeout passed
	KilledByOutput    = "output"    // the code wrote more than the output limit
	KilledByMemory    = "memory"    // the code ran out of memory (MemoryError, or the sandbox's OOM kill)
	KilledByProcesses = "processes" // the code reached the sandbox's process limit (a fork bomb)
	KilledByCPU       = "cpu"       // the interpreter used up the sandbox's CPU time
	KilledByFileSize  = "file-size" // the code wrote past the sandbox's file size limit
	KilledByDisk      = "disk"      // the code filled the sandbox's /scratch or /tmp
	KilledByCrash     = "crash"     // the interpreter process died
	KilledByCancelled = "cancelled" // the caller's context ended mid-run
)

// sandboxLimitErrors are the exceptions reported when a sandbox limit (a
// bridge.ExitStatus.Limit) ended the interpreter process.
var sandboxLimitErrors = map[string]ExecError{
	KilledByMemory: {Type: "MemoryLimitExceeded",
		Message: "the code used more memory than the sandbox allows; the interpreter was killed"},
	KilledByProcesses: {Type: "ProcessLimitExceeded",
		Message: "the code started more processes or threads than the sandbox allows; the interpreter was killed"},
	KilledByCPU: {Type: "CPULimitExceeded",
		Message: "the interpreter used up the CPU time the sandbox allows; it was killed"},
	KilledByFileSize: {Type: "FileSizeLimitExceeded",
		Message: "the code wrote a file larger than the sandbox allows; the interpreter was killed"},
}

// killGrace is how long past an execution's timeout the host waits for the
// plugin's own timeout answer before it kills the process.
const killGrace = 2 * time.Second

// ErrClosed is returned by a closed Pool.
var ErrClosed = errors.New("codeact: pool closed")

// ExecError is the exception that ended code.
type ExecError struct {
	// Type is the exception's class name ("NameError", "ToolError",
	// "ExecutionTimeout", "InterpreterCrash").
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback,omitempty"`
}

// String is "Type: message", as the LM is shown it.
func (e *ExecError) String() string {
	if e.Message == "" {
		return e.Type
	}
	return e.Type + ": " + e.Message
}

// Observation is what one execution gave.
type Observation struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Truncated: the code wrote more than the session keeps.
	Truncated bool `json:"truncated,omitempty"`
	// Value is repr() of the last expression's value, "" for none;
	// ValueJSON its JSON, when it has one.
	Value     string `json:"value,omitempty"`
	ValueJSON string `json:"value_json,omitempty"`
	// Submitted: the code called SUBMIT; Outputs holds its fields
	// (SUBMIT(x) gives {"output": x}).
	Submitted bool          `json:"submitted,omitempty"`
	Outputs   pyjson.Object `json:"outputs,omitempty"`
	// Error is the exception that ended the code, nil when it ran through
	// (or submitted).
	Error *ExecError `json:"error,omitempty"`
	// KilledBy names the limit that ended the code (KilledByTimeout...),
	// "" when none did. The interpreter it ran on was discarded.
	KilledBy string `json:"killed_by,omitempty"`
	// StateLost: the interpreter was replaced after this execution, and
	// the session's namespace (variables, imports, definitions) is gone.
	StateLost bool          `json:"state_lost,omitempty"`
	ToolCalls int           `json:"tool_calls,omitempty"`
	Duration  time.Duration `json:"-"`
	// Exit is how the interpreter process ended, when it crashed and the
	// bridge saw how (nil otherwise).
	Exit *bridge.ExitStatus `json:"-"`
}

// Output is the execution's output as DSPy's ProgramOfThought and CodeAct
// record it (json.dumps of the interpreter's answer): the submitted fields,
// else the last expression's value, else what the code printed.
func (o *Observation) Output() string {
	switch {
	case o.Submitted:
		return pythonJSON(o.Outputs)
	case o.ValueJSON != "":
		return o.ValueJSON
	case o.Value != "":
		return pythonJSON(o.Value)
	}
	return pythonJSON(o.Stdout)
}

// ErrorText is the error as the LM is told it, with a note when the
// interpreter's state was lost; "" when the execution succeeded.
func (o *Observation) ErrorText() string {
	if o.Error == nil {
		return ""
	}
	s := o.Error.String()
	if o.StateLost {
		s += "\n" + StateLostNote
	}
	return s
}

// StateLostNote tells the LM that the interpreter was restarted.
const StateLostNote = "The Python interpreter was restarted: every variable, import and function defined by earlier code is gone; define again what you need."

// Interpreter is one interpreter plugin process. Executions on it run one
// at a time; Pool hands each to one session at a time.
type Interpreter struct {
	name   string
	plugin *bridge.Plugin
	rpc    pluginv1.InterpreterClient

	mu     sync.Mutex
	broken string // why it must not be reused; "" while it may
	uses   int
}

// Name is the interpreter's plugin name ("interpreter#3").
func (it *Interpreter) Name() string { return it.name }

// Pid is the process id, 0 when it is not running.
func (it *Interpreter) Pid() int { return it.plugin.Pid() }

// Broken says why the interpreter must be discarded, "" when it may be
// reused.
func (it *Interpreter) Broken() string {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.broken == "" && it.plugin.State() != bridge.StateRunning {
		return "its process is not running"
	}
	return it.broken
}

// used is how many executions the interpreter ran.
func (it *Interpreter) used() int {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.uses
}

func (it *Interpreter) breakFor(reason string) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.broken == "" {
		it.broken = reason
	}
}

// kill stops the process at once.
func (it *Interpreter) kill() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a done context makes Shutdown kill without asking
	_ = it.plugin.Shutdown(ctx)
}

// SessionOptions configure a session.
type SessionOptions struct {
	// MaxOutputBytes keeps each of stdout and stderr up to this many bytes.
	// Default: the plugin's, 64 KiB.
	MaxOutputBytes int
	// OutputLimitBytes stops code that writes more than this in all.
	// Default: the plugin's, 16 times MaxOutputBytes.
	OutputLimitBytes int
}

func (o SessionOptions) proto() map[string]string {
	m := map[string]string{}
	if o.MaxOutputBytes > 0 {
		m["max_output_bytes"] = strconv.Itoa(o.MaxOutputBytes)
	}
	if o.OutputLimitBytes > 0 {
		m["output_limit_bytes"] = strconv.Itoa(o.OutputLimitBytes)
	}
	return m
}

// toolSpecs describes tools for StartSession.
func toolSpecs(tools []*tool.Tool) ([]*pluginv1.ToolSpec, error) {
	specs := make([]*pluginv1.ToolSpec, len(tools))
	for i, t := range tools {
		schema, err := json.Marshal(t.Parameters())
		if err != nil {
			return nil, fmt.Errorf("codeact: tool %s: schema: %w", t.Name(), err)
		}
		specs[i] = &pluginv1.ToolSpec{Name: t.Name(), Description: t.Desc(), ArgsJsonSchema: string(schema)}
	}
	return specs, nil
}

func (it *Interpreter) startSession(ctx context.Context, specs []*pluginv1.ToolSpec, opts SessionOptions) (string, error) {
	resp, err := it.rpc.StartSession(ctx, &pluginv1.StartSessionRequest{Tools: specs, Options: opts.proto()})
	if err != nil {
		it.breakFor("start session failed")
		return "", fmt.Errorf("codeact: start session on %s: %w", it.name, err)
	}
	return resp.GetSessionId(), nil
}

func (it *Interpreter) stopSession(ctx context.Context, id string) error {
	if _, err := it.rpc.StopSession(ctx, &pluginv1.StopSessionRequest{SessionId: id}); err != nil {
		it.breakFor("stop session failed")
		return fmt.Errorf("codeact: stop session on %s: %w", it.name, err)
	}
	return nil
}

// execute runs code in a session of this interpreter, answering its tool
// calls with tools. A limit, a crash or the end of ctx during the run
// marks the interpreter broken. The error is nil whenever the code ran,
// even if it failed or was killed: that is in the Observation. An error
// means the call could not be made (the interpreter was down) or ctx
// ended.
func (it *Interpreter) execute(ctx context.Context, session, code string, timeout time.Duration, tools map[string]*tool.Tool) (*Observation, error) {
	it.mu.Lock()
	it.uses++
	it.mu.Unlock()
	start := time.Now()
	var (
		runCtx context.Context
		cancel context.CancelFunc
	)
	if timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, timeout+killGrace)
	} else {
		runCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	obs, sent, err := it.stream(runCtx, session, code, timeout, tools)
	if obs != nil {
		obs.Duration = time.Since(start)
	}
	if err == nil {
		if obs.KilledBy != "" {
			it.breakFor(obs.KilledBy)
		}
		return obs, nil
	}
	// The stream failed: find out whether the process died, the host's
	// deadline passed, or the caller gave up.
	switch {
	case ctx.Err() != nil:
		it.breakFor(KilledByCancelled)
		return nil, ctx.Err()
	case errors.Is(err, bridge.ErrPluginExited) || it.plugin.State() != bridge.StateRunning:
		var exit *bridge.ExitStatus
		var be *bridge.Error
		if errors.As(err, &be) && be.Exit != nil {
			e := *be.Exit
			exit = &e
		}
		obs := crashObservation(exit, timeout, time.Since(start))
		it.breakFor(obs.KilledBy)
		return obs, nil
	case runCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
		// (The deadline travels with the stream: the plugin's side may
		// end it a moment before runCtx's own timer fires.)
		it.breakFor(KilledByTimeout)
		return &Observation{
			Error:    &ExecError{Type: "ExecutionTimeout", Message: fmt.Sprintf("the code ran past its timeout of %s and did not stop; the interpreter was killed", timeout)},
			KilledBy: KilledByTimeout, Duration: time.Since(start),
		}, nil
	case sent:
		// The process lives but the execution broke off under the code: it
		// closed the plugin's connection, or tampered with what the plugin
		// answers with.
		it.breakFor(KilledByCrash)
		return &Observation{
			Error: &ExecError{Type: "InterpreterCrash", Message: "the Python interpreter stopped answering properly while running the code " +
				"(did the code close file descriptors it did not open, or replace modules the interpreter uses?); the interpreter was killed"},
			KilledBy: KilledByCrash, Duration: time.Since(start),
		}, nil
	}
	it.breakFor("execute failed")
	return nil, fmt.Errorf("codeact: execute on %s: %w", it.name, err)
}

// crashObservation reports an interpreter process that died while it ran
// code, after took, from how it ended (nil: unknown): a sandbox limit
// that killed it by that limit's name; the host's kill of an interpreter
// that stopped answering after the execution's timeout as a timeout; any
// other end as an InterpreterCrash, saying whether the host killed it
// (its health checks failed) or it died by itself.
func crashObservation(exit *bridge.ExitStatus, timeout, took time.Duration) *Observation {
	obs := &Observation{Duration: took, Exit: exit}
	var limit string
	if exit != nil {
		limit = exit.Limit
	}
	if e, ok := sandboxLimitErrors[limit]; ok {
		e.Message += " (" + exit.String() + ")"
		obs.Error, obs.KilledBy = &e, limit
		return obs
	}
	if exit != nil && exit.ByHost && timeout > 0 && took >= timeout {
		obs.Error = &ExecError{Type: "ExecutionTimeout", Message: fmt.Sprintf(
			"the code ran past its timeout of %s and the interpreter stopped answering; it was killed (%s)", timeout, exit)}
		obs.KilledBy = KilledByTimeout
		return obs
	}
	detail := "the process exited"
	switch {
	case exit != nil && exit.ByHost:
		// Code that holds the GIL in C stops the health checks too.
		detail = exit.String() + " by the host: it stopped answering the host's health checks"
	case exit != nil:
		detail = exit.String()
	}
	obs.Error = &ExecError{Type: "InterpreterCrash", Message: "the Python interpreter process died while running the code (" + detail + ")"}
	obs.KilledBy = KilledByCrash
	return obs
}

// stream runs one execution over the Execute stream; sent reports whether
// the code reached the plugin (a failure after that is the code's doing,
// or its interpreter's death).
func (it *Interpreter) stream(ctx context.Context, session, code string, timeout time.Duration, tools map[string]*tool.Tool) (obs *Observation, sent bool, err error) {
	st, err := it.rpc.Execute(ctx)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = st.CloseSend() }()
	err = st.Send(&pluginv1.ExecuteClientMessage{Msg: &pluginv1.ExecuteClientMessage_Code{Code: &pluginv1.ExecuteCode{
		SessionId: session, Code: code, TimeoutSeconds: timeout.Seconds(),
	}}})
	if err != nil {
		return nil, false, err
	}
	for {
		msg, err := st.Recv()
		if err == io.EOF {
			return nil, true, errors.New("the plugin ended the execution without an answer")
		}
		if err != nil {
			return nil, true, err
		}
		switch m := msg.GetMsg().(type) {
		case *pluginv1.ExecuteServerMessage_ToolCall:
			res := it.callTool(ctx, m.ToolCall, tools)
			if err := st.Send(&pluginv1.ExecuteClientMessage{Msg: &pluginv1.ExecuteClientMessage_ToolResult{ToolResult: res}}); err != nil {
				return nil, true, err
			}
		case *pluginv1.ExecuteServerMessage_Result:
			obs, err := resultObservation(m.Result)
			return obs, true, err
		case *pluginv1.ExecuteServerMessage_Error:
			e := m.Error
			obs := &Observation{
				Error:    &ExecError{Type: e.GetType(), Message: e.GetMessage(), Traceback: e.GetTraceback()},
				KilledBy: e.GetKilledBy(), ToolCalls: int(e.GetToolCalls()),
			}
			captured(obs, e.GetOutput())
			return obs, true, nil
		}
		// Output messages are reserved; version 1 of the plugin sends none.
	}
}

func captured(obs *Observation, c *pluginv1.Captured) {
	obs.Stdout, obs.Stderr, obs.Truncated = c.GetStdout(), c.GetStderr(), c.GetTruncated()
}

func resultObservation(r *pluginv1.ExecResult) (*Observation, error) {
	obs := &Observation{Value: r.GetValueRepr(), ValueJSON: r.GetValueJson(), Submitted: r.GetSubmitted(), ToolCalls: int(r.GetToolCalls())}
	captured(obs, r.GetOutput())
	if obs.Submitted {
		v, err := pyjson.Decode([]byte(r.GetSubmitJson()))
		if err != nil {
			return nil, fmt.Errorf("the plugin's SUBMIT fields are not JSON: %w", err)
		}
		obj, ok := v.(pyjson.Object)
		if !ok {
			return nil, fmt.Errorf("the plugin's SUBMIT fields are not a JSON object: %s", r.GetSubmitJson())
		}
		obs.Outputs = obj
	}
	return obs, nil
}

// callTool runs one tool call of running code and returns its answer. The
// tool's failures (unknown tool, bad arguments, its own error, a panic) go
// back to the code as the error of a ToolError.
func (it *Interpreter) callTool(ctx context.Context, call *pluginv1.ToolCall, tools map[string]*tool.Tool) *pluginv1.ToolResult {
	start := time.Now()
	res := &pluginv1.ToolResult{CallId: call.GetCallId()}
	t, ok := tools[call.GetName()]
	if !ok {
		res.Error = fmt.Sprintf("there is no tool named %q", call.GetName())
	} else if args, err := decodeArgs(call.GetArgsJson()); err != nil {
		res.Error = "tool " + t.Name() + ": " + err.Error()
	} else if v, err := t.Invoke(ctx, args); err != nil {
		res.Error = err.Error()
	} else {
		res.ResultJson = pyjson.Dumps(v, -1)
	}
	if event.Enabled(ctx, ToolCallEnd) {
		info := &ToolCallInfo{Interpreter: it.name, Tool: call.GetName(), Args: call.GetArgsJson(), Result: cut(res.ResultJson, 4096), Error: res.Error, Duration: time.Since(start)}
		event.Publish(ctx, ToolCallEnd, event.SpanFrom(ctx), info)
	}
	return res
}

func decodeArgs(s string) (map[string]any, error) {
	if strings.TrimSpace(s) == "" {
		return map[string]any{}, nil
	}
	v, err := pyjson.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("arguments are not JSON: %w", err)
	}
	obj, ok := v.(pyjson.Object)
	if !ok {
		return nil, errors.New("arguments are not a JSON object")
	}
	return obj.Map(), nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// pythonJSON is Python's json.dumps(v): ", " and ": " separators, non-ASCII
// escaped as \uXXXX.
func pythonJSON(v any) string {
	s := pyjson.Dumps(v, -1)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x80:
			b.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
