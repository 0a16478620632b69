package codeact

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/tool"
)

// Field names CodeAct adds, as DSPy names them.
const (
	TrajectoryField    = "trajectory"
	generatedCodeField = "generated_code"
	finishedField      = "finished"
)

// DefaultMaxIters is how many pieces of code CodeAct runs at most (DSPy's
// max_iters).
const DefaultMaxIters = 5

// Option configures CodeAct and ProgramOfThought.
type Option func(*options)

type options struct {
	maxIters int
	pool     *Pool
}

// MaxIters sets how many times the module may generate and run code
// (CodeAct: default 5; ProgramOfThought: default 3). A CodeAct call may
// override it with an input named "max_iters", as in DSPy.
func MaxIters(n int) Option { return func(o *options) { o.maxIters = n } }

// UsePool runs the module's code on pool rather than on the context's
// (WithPool).
func UsePool(p *Pool) Option { return func(o *options) { o.pool = p } }

func (o options) poolFor(ctx context.Context) (*Pool, error) {
	if o.pool != nil {
		return o.pool, nil
	}
	if p := PoolFrom(ctx); p != nil {
		return p, nil
	}
	return nil, ErrNoPool
}

// CodeAct is DSPy's CodeAct: in each iteration its "codeact" predictor
// sees the inputs and the trajectory so far and writes Python (calling the
// Go tools as functions) and whether it is finished; the code runs in a
// persistent interpreter session and its output, or its error, joins the
// trajectory. After max_iters iterations, or when the LM says it is
// finished, the "extractor" ChainOfThought reads the inputs and the
// trajectory and writes the outputs. Code that calls SUBMIT with every
// output field ends the loop at once, and those values are the outputs
// (coerced to the fields' types), with no extractor call.
//
// Prompts, predictor names ("codeact", "extractor.predict") and the
// trajectory's keys are DSPy 3.4.1's. A timeout or crash restarts the
// interpreter, and the observation tells the LM that its state was lost.
// Safe for concurrent use when its tools are: each Forward has its own
// session.
type CodeAct struct {
	// CodeAct writes the code; named "codeact".
	CodeAct *module.Predict
	// Extractor writes the outputs; its predictor is "extractor.predict".
	Extractor *module.ChainOfThought

	sig   *signature.Signature
	tools []*tool.Tool
	opts  options
}

var _ module.Program = (*CodeAct)(nil)

// NewCodeAct builds a CodeAct for sig with tools (which may be none). Tool
// names must be unique Python identifiers other than SUBMIT; the signature
// may not use the field names CodeAct adds (trajectory, generated_code,
// finished).
func NewCodeAct(sig *signature.Signature, tools []*tool.Tool, opts ...Option) (*CodeAct, error) {
	if sig == nil {
		return nil, errors.New("codeact: nil signature")
	}
	o := options{maxIters: DefaultMaxIters}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxIters < 1 {
		return nil, fmt.Errorf("codeact: max iters %d is not positive", o.maxIters)
	}
	seen := map[string]bool{}
	for i, t := range tools {
		if t == nil {
			return nil, fmt.Errorf("codeact: tool %d is nil", i+1)
		}
		if seen[t.Name()] || t.Name() == "SUBMIT" || t.Name() == "ToolError" {
			return nil, fmt.Errorf("codeact: tool name %q is taken", t.Name())
		}
		seen[t.Name()] = true
	}
	codeSig, err := signature.New(
		append(sig.Inputs(), signature.Field{Name: TrajectoryField, Type: signature.StringType(), TypeDeclared: true}),
		[]signature.Field{
			{Name: generatedCodeField, Type: signature.StringType(), TypeDeclared: true, Desc: "Python code that when executed, produces output relevant to answering the question"},
			{Name: finishedField, Type: &signature.Type{Kind: signature.Bool}, TypeDeclared: true, Desc: "a boolean flag to determine if the process is done"},
		},
		strings.Join(codeActInstructions(sig, tools), "\n"))
	if err != nil {
		return nil, fmt.Errorf("codeact %s: %w", sig, err)
	}
	extractSig, err := signature.New(
		append(sig.Inputs(), signature.Field{Name: TrajectoryField, Type: signature.StringType(), TypeDeclared: true}),
		sig.Outputs(), sig.Instructions())
	if err != nil {
		return nil, fmt.Errorf("codeact %s: %w", sig, err)
	}
	return &CodeAct{
		CodeAct:   module.NewPredict(codeSig),
		Extractor: module.NewChainOfThought(extractSig),
		sig:       sig,
		tools:     slices.Clone(tools),
		opts:      o,
	}, nil
}

// codeActInstructions is DSPy's CodeAct._build_instructions.
func codeActInstructions(sig *signature.Signature, tools []*tool.Tool) []string {
	var instr []string
	if sig.Instructions() != "" {
		instr = append(instr, sig.Instructions()+"\n")
	}
	inputs, outputs := backquoted(sig.Inputs()), backquoted(sig.Outputs())
	instr = append(instr,
		"You are an intelligent agent. For each episode, you will receive the fields "+inputs+" as input.\n"+
			"Your goal is to generate executable Python code that collects any necessary information for producing "+outputs+".\n"+
			"For each iteration, you will generate a code snippet that either solves the task or progresses towards the solution.\n"+
			"Ensure any output you wish to extract from the code is printed to the console. The code should be enclosed in a fenced code block.\n"+
			"When all information for producing the outputs ("+outputs+") are available to be extracted, mark `finished=True` besides the final Python code.\n"+
			"You have access to the Python Standard Library and the following functions:")
	for i, t := range tools {
		instr = append(instr, "("+strconv.Itoa(i+1)+") "+t.String())
	}
	return instr
}

func backquoted(fields []signature.Field) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = "`" + f.Name + "`"
	}
	return strings.Join(parts, ", ")
}

// Signature returns the signature the module was built for.
func (c *CodeAct) Signature() *signature.Signature { return c.sig }

// Tools returns the module's tools, in order.
func (c *CodeAct) Tools() []*tool.Tool { return slices.Clone(c.tools) }

// InputNames are the signature's input fields.
func (c *CodeAct) InputNames() []string {
	names := make([]string, c.sig.NumInputs())
	for i := range names {
		names[i] = c.sig.Input(i).Name
	}
	return names
}

// NamedPredictors returns "codeact" and "extractor.predict", as DSPy names
// them.
func (c *CodeAct) NamedPredictors() []module.NamedPredictor {
	return append([]module.NamedPredictor{{Name: "codeact", Predictor: c.CodeAct}},
		module.Children(module.Child{Name: "extractor", Program: c.Extractor})...)
}

// Clone returns a copy with independent predictors; tools and the pool are
// shared.
func (c *CodeAct) Clone() module.Program {
	cc := *c
	cc.CodeAct = c.CodeAct.Copy()
	cc.Extractor = module.CloneAs(c.Extractor)
	return &cc
}

// Forward runs the loop and returns the signature's outputs and
// "trajectory", a map holding generated_code_i, code_output_i and
// observation_i (a parse or execution failure) for each iteration i; with
// the extractor, also its "reasoning".
//
// Failures of the code — exceptions, tool errors, timeouts, a crashed
// interpreter — are observations and the loop goes on. LM errors, an
// interpreter that cannot be started, and a done context are returned.
func (c *CodeAct) Forward(ctx context.Context, inputs module.Inputs) (*example.Prediction, error) {
	return module.Traced(ctx, "CodeAct", c.sig, inputs, func(ctx context.Context) (*example.Prediction, error) {
		return c.forward(ctx, inputs)
	})
}

func (c *CodeAct) forward(ctx context.Context, inputs module.Inputs) (*example.Prediction, error) {
	pool, err := c.opts.poolFor(ctx)
	if err != nil {
		return nil, err
	}
	in := maps.Clone(inputs)
	maxIters := c.opts.maxIters
	if v, ok := in["max_iters"]; ok && !c.sig.IsInput("max_iters") {
		n, err := positiveInt(v)
		if err != nil {
			return nil, fmt.Errorf("codeact %s: input max_iters: %w", c.sig, err)
		}
		maxIters = n
		delete(in, "max_iters")
	}
	delete(in, TrajectoryField)

	session, err := pool.NewSession(ctx, c.tools)
	if err != nil {
		return nil, fmt.Errorf("codeact %s: %w", c.sig, err)
	}
	defer session.Close()

	var (
		traj      pyjson.Object
		usage     lm.Usage
		cost      lm.Cost
		submitted map[string]any
	)
	for idx := range maxIters {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		args := maps.Clone(in)
		args[TrajectoryField] = slices.Clone(traj)
		pred, err := c.CodeAct.Forward(ctx, args)
		if err != nil {
			return nil, fmt.Errorf("codeact %s: iteration %d: %w", c.sig, idx, err)
		}
		usage, cost = usage.Add(pred.Usage), cost.Add(pred.Cost)
		n := strconv.Itoa(idx)
		code, problem := ParseCode(pred.String(generatedCodeField))
		if problem != "" {
			traj = traj.Set("observation_"+n, "Failed to parse the generated code: "+problem)
			continue
		}
		traj = traj.Set("generated_code_"+n, code)
		obs, err := session.Execute(ctx, code)
		if obs == nil {
			return nil, fmt.Errorf("codeact %s: iteration %d: %w", c.sig, idx, err)
		}
		if obs.Error == nil {
			traj = traj.Set("code_output_"+n, obs.Output())
		} else {
			traj = traj.Set("observation_"+n, "Failed to execute the generated code: "+obs.ErrorText())
		}
		if err != nil {
			return nil, fmt.Errorf("codeact %s: iteration %d: %w", c.sig, idx, err)
		}
		if obs.Submitted {
			if out, ok := submittedOutputs(c.sig, obs.Outputs); ok {
				submitted = out
				break
			}
		}
		if finished, _ := pred.Get(finishedField); finished == true {
			break
		}
	}

	var out map[string]any
	if submitted != nil {
		out = submitted
	} else {
		args := maps.Clone(in)
		args[TrajectoryField] = formatTrajectory(traj)
		pred, err := c.Extractor.Forward(ctx, args)
		if err != nil {
			return nil, fmt.Errorf("codeact %s: extract: %w", c.sig, err)
		}
		usage, cost = usage.Add(pred.Usage), cost.Add(pred.Cost)
		out = pred.Map()
	}
	out[TrajectoryField] = traj.Map()
	res := example.NewPrediction(out)
	res.Usage, res.Cost = usage, cost
	return res, nil
}

// submittedOutputs reads SUBMIT's fields as the signature's outputs,
// coerced to their types; false when one is missing or does not fit.
func submittedOutputs(sig *signature.Signature, fields pyjson.Object) (map[string]any, bool) {
	out := make(map[string]any, sig.NumOutputs())
	for i := range sig.NumOutputs() {
		f := sig.Output(i)
		v, ok := fields.Get(f.Name)
		if !ok {
			return nil, false
		}
		t := f.Type
		if t == nil {
			t = signature.StringType()
		}
		if t.IsStr() {
			if _, isStr := v.(string); !isStr {
				v = pyjson.Str(v)
			}
		}
		cv, err := t.Coerce(v)
		if err != nil {
			return nil, false
		}
		out[f.Name] = cv
	}
	return out, true
}

// formatTrajectory is DSPy's ReAct._format_trajectory with the chat
// adapter: each entry as an input field, "[[ ## key ## ]]\nvalue".
func formatTrajectory(traj pyjson.Object) string {
	parts := make([]string, 0, len(traj))
	for _, m := range traj {
		parts = append(parts, "[[ ## "+m.Key+" ## ]]\n"+adapter.FormatValue(signature.StringType(), m.Value))
	}
	return strings.TrimFunc(strings.Join(parts, "\n\n"), isPySpace)
}

func positiveInt(v any) (int, error) {
	switch x := pyjson.Normalize(v).(type) {
	case int64:
		if x >= 1 && x <= 1<<20 {
			return int(x), nil
		}
	case float64:
		if x >= 1 && x <= 1<<20 && x == float64(int(x)) {
			return int(x), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil && n >= 1 && n <= 1<<20 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%v is not a positive integer", v)
}
