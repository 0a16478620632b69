// Package codeact runs LM-written Python for DSPEx: CodeAct (the LM writes
// code that calls the program's Go tools, over several iterations) and
// ProgramOfThought (the LM writes code that computes the answer), on the
// interpreter plugin python/dspex_plugins/interpreter.py, spoken to over the
// bridge.
//
// # Interpreters and the pool
//
// An Interpreter is one plugin process (a bridge.Plugin that is never
// restarted in place) holding the sessions of the Interpreter service. A
// Pool keeps warm interpreters ready, so that an execution does not pay a
// process start, and bounds how many run at once. An interpreter whose
// code timed out, crashed the process, hit a limit (output, memory) or was
// cancelled mid-run is killed and replaced, never handed out again.
//
// A Session is a persistent Python namespace with a set of Go tools, on
// one interpreter from the pool. Session.Execute runs code: each tool call
// the code makes comes back over the execute stream, runs as the Go tool
// (core/tool: validated arguments, the tool's own error) and its result or
// error goes back to the code. When an execution kills its interpreter,
// the session starts a fresh one with the same tools and the Observation
// says that the state was lost (StateLost), so that the LM can be told.
//
// # Modules
//
// CodeAct and ProgramOfThought follow DSPy 3.4.1's dspy.CodeAct and
// dspy.ProgramOfThought: the same signatures, instructions and predictor
// names, the same trajectory and code parsing. They find their pool in the
// context (WithPool) unless given one (UsePool). Program files name them
// `module: code_act` (with built-in tools) and `module: program_of_thought`:
// ProgramFileModules hands their builders to core/programfile.
//
// # Events
//
// Every execution publishes ExecuteStart and ExecuteEnd (*ExecutionInfo),
// and every tool call the code makes ToolCallEnd (*ToolCallInfo), on the
// context's event bus, in a span under the module call.
package codeact
