package module

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/tool"
)

// Field names of ReAct's predictors, as DSPy names them.
const (
	TrajectoryField   = "trajectory"
	nextThoughtField  = "next_thought"
	nextToolNameField = "next_tool_name"
	nextToolArgsField = "next_tool_args"
)

// DefaultMaxIters is how many tool calls ReAct allows by default (DSPy's
// max_iters).
const DefaultMaxIters = 20

// truncationAttempts is how many times a call is tried while the
// trajectory is shortened after context-window errors (DSPy's 3).
const truncationAttempts = 3

// ReAct is DSPy's tool-using agent ("Reasoning and Acting"). In each step
// its "react" predictor sees the inputs and the trajectory so far and picks
// a thought, a tool and the tool's arguments; the tool runs and its result
// (the observation) joins the trajectory. When the predictor picks "finish",
// or after MaxIters steps, the "extract" ChainOfThought reads the inputs
// and the trajectory and writes the signature's outputs.
//
// Prompts, predictor names ("react", "extract.predict") and field types are
// DSPy 3.4.1's, so a ReAct optimized in DSPy loads here and sends the same
// prompts. Native function calling (tools passed in the LM request) is not
// used: tools are described in the instructions, as DSPy's ReAct does.
//
// A ReAct is safe for concurrent use when its tools are: each Forward keeps
// its own trajectory.
type ReAct struct {
	// React picks the next tool; named "react".
	React *Predict
	// Extract writes the outputs; its predictor is named "extract.predict".
	Extract *ChainOfThought

	sig      *signature.Signature
	tools    []*tool.Tool          // the caller's tools, in order
	byName   map[string]*tool.Tool // the tools and "finish"
	maxIters int
}

var _ Program = (*ReAct)(nil)

// ReActOption configures a ReAct.
type ReActOption func(*reactConfig)

type reactConfig struct {
	maxIters int
}

// MaxIters sets how many tool calls a ReAct may make before it must answer
// (default DefaultMaxIters). A call may override it with an input named
// "max_iters", as in DSPy, unless the signature has such an input.
func MaxIters(n int) ReActOption { return func(c *reactConfig) { c.maxIters = n } }

// NewReAct builds a ReAct agent for sig with the given tools. Tool names
// must be unique; the signature may not use the field names ReAct adds
// (trajectory, next_thought, next_tool_name, next_tool_args).
func NewReAct(sig *signature.Signature, tools []*tool.Tool, opts ...ReActOption) (*ReAct, error) {
	if sig == nil {
		return nil, errors.New("module: react: nil signature")
	}
	cfg := reactConfig{maxIters: DefaultMaxIters}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxIters < 1 {
		return nil, fmt.Errorf("module: react: max iters %d is not positive", cfg.maxIters)
	}
	byName := make(map[string]*tool.Tool, len(tools)+1)
	names := make([]any, 0, len(tools)+1)
	for i, t := range tools {
		if t == nil {
			return nil, fmt.Errorf("module: react: tool %d is nil", i+1)
		}
		if _, dup := byName[t.Name()]; dup {
			return nil, fmt.Errorf("module: react: duplicate tool name %q", t.Name())
		}
		byName[t.Name()] = t
		names = append(names, t.Name())
	}
	outputs := backquoted(sig.Outputs())
	finish, err := tool.NewFunc(tool.FinishName,
		"Marks the task as complete. That is, signals that all information for producing the outputs, i.e. "+outputs+", are now available to be extracted.",
		&signature.Type{Kind: signature.Object, Name: "finish"},
		func(context.Context, map[string]any) (any, error) { return "Completed.", nil })
	if err != nil {
		return nil, fmt.Errorf("module: react: %w", err)
	}
	byName[tool.FinishName] = finish
	names = append(names, tool.FinishName)

	reactSig, err := signature.New(
		append(sig.Inputs(), signature.Field{Name: TrajectoryField, Type: signature.StringType(), TypeDeclared: true}),
		[]signature.Field{
			{Name: nextThoughtField, Type: signature.StringType(), TypeDeclared: true},
			{Name: nextToolNameField, Type: signature.LiteralOf(names...), TypeDeclared: true},
			{Name: nextToolArgsField, Type: signature.DictOf(signature.AnyType()), TypeDeclared: true},
		},
		reactInstructions(sig, append(tools[:len(tools):len(tools)], finish)))
	if err != nil {
		return nil, fmt.Errorf("module: react %s: %w", sig, err)
	}
	extractSig, err := signature.New(
		append(sig.Inputs(), signature.Field{Name: TrajectoryField, Type: signature.StringType(), TypeDeclared: true}),
		sig.Outputs(), sig.Instructions())
	if err != nil {
		return nil, fmt.Errorf("module: react %s: %w", sig, err)
	}
	return &ReAct{
		React:    NewPredict(reactSig),
		Extract:  NewChainOfThought(extractSig),
		sig:      sig,
		tools:    slices.Clone(tools),
		byName:   byName,
		maxIters: cfg.maxIters,
	}, nil
}

// reactInstructions is the react predictor's instructions, worded as DSPy's.
func reactInstructions(sig *signature.Signature, tools []*tool.Tool) string {
	var instr []string
	if sig.Instructions() != "" {
		instr = append(instr, sig.Instructions()+"\n")
	}
	instr = append(instr,
		"You are an Agent. In each episode, you will be given the fields "+backquoted(sig.Inputs())+" as input. And you can see your past trajectory so far.",
		"Your goal is to use one or more of the supplied tools to collect any necessary information for producing "+backquoted(sig.Outputs())+".\n",
		"To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, and also when finishing the task.",
		"After each tool call, you receive a resulting observation, which gets appended to your trajectory.\n",
		"When writing next_thought, you may reason about the current situation and plan for future steps.",
		"When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n",
	)
	for i, t := range tools {
		instr = append(instr, "("+strconv.Itoa(i+1)+") "+t.String())
	}
	instr = append(instr, "When providing `next_tool_args`, the value inside the field must be in JSON format")
	return strings.Join(instr, "\n")
}

func backquoted(fields []signature.Field) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = "`" + f.Name + "`"
	}
	return strings.Join(parts, ", ")
}

// Tools returns the agent's tools (without "finish"), in order.
func (r *ReAct) Tools() []*tool.Tool { return slices.Clone(r.tools) }

// Signature returns the signature the agent was built for.
func (r *ReAct) Signature() *signature.Signature { return r.sig }

// InputNames are the signature's input fields.
func (r *ReAct) InputNames() []string { return inputNames(r.sig) }

// NamedPredictors returns "react" and "extract.predict", as DSPy names them.
func (r *ReAct) NamedPredictors() []NamedPredictor {
	return append([]NamedPredictor{{Name: "react", Predictor: r.React}},
		Children(Child{Name: "extract", Program: r.Extract})...)
}

// Clone returns a copy with independent predictors; the tools, which are
// immutable, are shared.
func (r *ReAct) Clone() Program {
	c := *r
	c.React = r.React.Copy()
	c.Extract = CloneAs(r.Extract)
	return &c
}

// step is one tool call of the trajectory.
type step struct {
	idx         int
	thought     string
	tool        string
	args        any // a JSON object (pyjson.Object, in the LM's order), or the LM's text when it was none
	observation any
}

func (s step) keys() [4]string {
	n := strconv.Itoa(s.idx)
	return [4]string{"thought_" + n, "tool_name_" + n, "tool_args_" + n, "observation_" + n}
}

func (s step) values() [4]any { return [4]any{s.thought, s.tool, s.args, s.observation} }

// formatTrajectory is DSPy's _format_trajectory: the steps as the chat
// adapter writes input fields, "[[ ## thought_0 ## ]]\n...".
func formatTrajectory(steps []step) string {
	parts := make([]string, 0, 4*len(steps))
	for _, s := range steps {
		keys, values := s.keys(), s.values()
		for i := range keys {
			parts = append(parts, "[[ ## "+keys[i]+" ## ]]\n"+adapter.FormatValue(signature.StringType(), values[i]))
		}
	}
	return strings.TrimFunc(strings.Join(parts, "\n\n"), isPySpace)
}

func trajectoryMap(steps []step) map[string]any {
	m := make(map[string]any, 4*len(steps))
	for _, s := range steps {
		keys, values := s.keys(), s.values()
		for i := range keys {
			m[keys[i]] = values[i]
		}
	}
	return m
}

// Forward runs the agent loop and returns the signature's outputs, the
// extract step's "reasoning", and "trajectory": a map holding thought_i,
// tool_name_i, tool_args_i and observation_i for each step i.
//
// Tool failures — an unknown tool name, arguments that are not a JSON
// object or do not fit the tool's schema, the tool's error, a panic —
// become the step's observation ("Execution error in <tool>: ..."), and the
// loop goes on. A react answer that cannot be parsed at all ends the loop,
// as does a context-window error that dropping the oldest steps (three
// times at most) does not cure; the outputs are then extracted from what
// was gathered. Other LM errors, and a done context, are returned.
func (r *ReAct) Forward(ctx context.Context, inputs Inputs) (*example.Prediction, error) {
	return Traced(ctx, "ReAct", r.sig, inputs, func(ctx context.Context) (*example.Prediction, error) {
		return r.forward(ctx, inputs)
	})
}

func (r *ReAct) forward(ctx context.Context, inputs Inputs) (*example.Prediction, error) {
	in := maps.Clone(inputs)
	maxIters := r.maxIters
	if v, ok := in["max_iters"]; ok && !r.sig.IsInput("max_iters") {
		n, err := positiveInt(v)
		if err != nil {
			return nil, fmt.Errorf("react %s: input max_iters: %w", r.sig, err)
		}
		maxIters = n
		delete(in, "max_iters")
	}
	delete(in, TrajectoryField)

	var (
		steps []step
		usage lm.Usage
		cost  lm.Cost
	)
	account := func(p *example.Prediction) {
		usage, cost = usage.Add(p.Usage), cost.Add(p.Cost)
	}
loop:
	for idx := range maxIters {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pred, err := r.callTruncating(ctx, r.React, in, &steps)
		st := step{idx: idx}
		var pe *adapter.ParseError
		switch {
		case err == nil:
			account(pred)
			st.thought = pred.String(nextThoughtField)
			st.tool = pred.String(nextToolNameField)
			st.args, _ = pred.Get(nextToolArgsField)
			if st.args == nil {
				st.args = map[string]any{}
			}
		case errors.Is(err, lm.ErrContextWindow):
			break loop // DSPy ends the trajectory here and extracts from what is left.
		case errors.As(err, &pe):
			var ok bool
			if st, ok = r.lenientStep(ctx, pe, idx); !ok {
				break loop // DSPy: "Agent failed to select a valid tool".
			}
		default:
			return nil, fmt.Errorf("react %s: step %d: %w", r.sig, idx, err)
		}
		obs, err := r.act(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("react %s: step %d: tool %s: %w", r.sig, idx, st.tool, err)
		}
		st.observation = obs
		steps = append(steps, st)
		if st.tool == tool.FinishName {
			break
		}
	}

	pred, err := r.callTruncating(ctx, r.Extract, in, &steps)
	if err != nil {
		return nil, fmt.Errorf("react %s: extract: %w", r.sig, err)
	}
	account(pred)
	out := pred.Map()
	out[TrajectoryField] = trajectoryMap(steps)
	res := example.NewPrediction(out)
	res.Usage, res.Cost = usage, cost
	return res, nil
}

// callTruncating runs m on the inputs and the formatted trajectory. On a
// context-window error it drops the oldest step and tries again, three
// times at most, as DSPy's _call_with_potential_trajectory_truncation; the
// dropped steps stay dropped.
func (r *ReAct) callTruncating(ctx context.Context, m Module, in Inputs, steps *[]step) (*example.Prediction, error) {
	var last error
	for range truncationAttempts {
		args := maps.Clone(in)
		args[TrajectoryField] = formatTrajectory(*steps)
		pred, err := m.Forward(ctx, args)
		if err == nil || !errors.Is(err, lm.ErrContextWindow) {
			return pred, err
		}
		last = err
		if len(*steps) <= 1 {
			return nil, fmt.Errorf("the prompt exceeds the context window and the trajectory, with %d tool calls, cannot be truncated: %w", len(*steps), err)
		}
		*steps = (*steps)[1:]
	}
	return nil, fmt.Errorf("the context window was exceeded even after %d attempts to truncate the trajectory: %w", truncationAttempts, last)
}

// lenientStep reads a react answer that failed to parse because of the tool
// name or the arguments, so that the failure can be shown to the LM as an
// observation rather than ending the loop. It reports false when the
// answer cannot be read even so.
func (r *ReAct) lenientStep(ctx context.Context, pe *adapter.ParseError, idx int) (step, bool) {
	if pe.Raw == "" {
		return step{}, false
	}
	// The adapter that failed first; then the other built-in format, since
	// an LM may keep answering in one format after a fallback to the other.
	var candidates []adapter.Adapter
	if set := SettingsFrom(ctx).Adapter; set != nil && set.Name() == pe.Adapter {
		candidates = append(candidates, set)
	}
	if pe.Adapter == "JSONAdapter" {
		candidates = append(candidates, adapter.JSONAdapter{}, &adapter.ChatAdapter{NoFallback: true})
	} else {
		candidates = append(candidates, &adapter.ChatAdapter{NoFallback: true}, adapter.JSONAdapter{})
	}
	sig := r.React.Signature()
	for _, name := range []string{nextToolNameField, nextToolArgsField} {
		var err error
		if sig, err = sig.WithField(name, func(f *signature.Field) { f.Type = signature.StringType() }); err != nil {
			return step{}, false
		}
	}
	var out map[string]any
	for _, a := range candidates {
		var err error
		if out, err = a.Parse(sig, pe.Raw); err == nil {
			break
		}
	}
	if out == nil {
		return step{}, false
	}
	st := step{idx: idx}
	st.thought, _ = out[nextThoughtField].(string)
	st.tool, _ = out[nextToolNameField].(string)
	st.tool = strings.TrimSpace(st.tool)
	argsText, _ := out[nextToolArgsField].(string)
	if v, err := signature.DictOf(signature.AnyType()).ParseText(argsText); err == nil {
		st.args = v
	} else {
		st.args = argsText
	}
	return st, true
}

// act runs the step's tool and returns the observation. Tool failures are
// observations; only a done context is an error.
func (r *ReAct) act(ctx context.Context, st step) (any, error) {
	t, ok := r.byName[st.tool]
	if !ok {
		names := make([]string, 0, len(r.tools)+1)
		for _, rt := range r.tools {
			names = append(names, rt.Name())
		}
		names = append(names, tool.FinishName)
		return executionError(st.tool, fmt.Sprintf("there is no tool named %q; the tool must be one of: %s", st.tool, strings.Join(names, ", "))), nil
	}
	var args map[string]any
	switch a := st.args.(type) {
	case pyjson.Object:
		args = make(map[string]any, len(a))
		for _, m := range a {
			args[m.Key] = m.Value
		}
	case map[string]any:
		args = a
	default:
		return executionError(st.tool, "the arguments are not a JSON object: "+pyjson.Str(st.args)), nil
	}
	v, err := t.Invoke(ctx, args)
	if err == nil {
		return v, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	var te *tool.Error
	if errors.As(err, &te) {
		return executionError(st.tool, te.Detail()), nil
	}
	return executionError(st.tool, err.Error()), nil
}

// executionError words a failed tool call as DSPy's ReAct does.
func executionError(tool, msg string) string {
	return "Execution error in " + tool + ": " + msg
}

func positiveInt(v any) (int, error) {
	var n int64
	switch x := pyjson.Normalize(v).(type) {
	case int64:
		n = x
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > math.MaxInt32 {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		n = int64(x)
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", x)
		}
		n = int64(i)
	default:
		return 0, fmt.Errorf("%v is not an integer", v)
	}
	if n < 1 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%d is not a positive integer", n)
	}
	return int(n), nil
}
