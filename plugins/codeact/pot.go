package codeact

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// DefaultPoTMaxIters is how many times ProgramOfThought generates code at
// most (DSPy's max_iters).
const DefaultPoTMaxIters = 3

// ErrMaxHops is returned by ProgramOfThought when every attempt's code
// failed.
var ErrMaxHops = errors.New("codeact: max hops reached")

// ProgramOfThought is DSPy's ProgramOfThought: "code_generate" writes
// Python that computes the outputs (submitting them with SUBMIT); the code
// runs; while it fails, "code_regenerate" sees the code and its error and
// writes new code, up to max_iters attempts in all; then "generate_output"
// reads the final code and its output and writes the signature's outputs.
// Each is a ChainOfThought (predictors "code_generate.predict",
// "code_regenerate.predict", "generate_output.predict") with DSPy 3.4.1's
// signatures and instructions. Safe for concurrent use: each Forward has
// its own session.
type ProgramOfThought struct {
	CodeGenerate   *module.ChainOfThought
	CodeRegenerate *module.ChainOfThought
	GenerateOutput *module.ChainOfThought

	sig  *signature.Signature
	opts options
}

var _ module.Program = (*ProgramOfThought)(nil)

// NewProgramOfThought builds a ProgramOfThought for sig, whose fields may
// not be named generated_code, previous_code, error, final_generated_code
// or code_output.
func NewProgramOfThought(sig *signature.Signature, opts ...Option) (*ProgramOfThought, error) {
	if sig == nil {
		return nil, errors.New("codeact: program of thought: nil signature")
	}
	o := options{maxIters: DefaultPoTMaxIters}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxIters < 1 {
		return nil, fmt.Errorf("codeact: program of thought: max iters %d is not positive", o.maxIters)
	}
	p := &ProgramOfThought{sig: sig, opts: o}
	for _, mode := range []struct {
		name string
		dst  **module.ChainOfThought
	}{{"generate", &p.CodeGenerate}, {"regenerate", &p.CodeRegenerate}, {"answer", &p.GenerateOutput}} {
		s, err := potSignature(sig, mode.name)
		if err != nil {
			return nil, fmt.Errorf("codeact: program of thought %s: %w", sig, err)
		}
		*mode.dst = module.NewChainOfThought(s)
	}
	return p, nil
}

func potField(name, desc string) signature.Field {
	return signature.Field{Name: name, Type: signature.StringType(), Desc: desc}
}

const codeDesc = "python code that answers the question"

// potSignature is DSPy's _generate_signature(mode) with
// _generate_instruction(mode).
func potSignature(sig *signature.Signature, mode string) (*signature.Signature, error) {
	inputs := sig.Inputs()
	var outputs []signature.Field
	switch mode {
	case "generate":
		outputs = []signature.Field{potField("generated_code", codeDesc)}
	case "regenerate":
		inputs = append(inputs,
			potField("previous_code", "previously-generated python code that errored"),
			potField("error", "error message from previously-generated python code"))
		outputs = []signature.Field{potField("generated_code", codeDesc)}
	default:
		inputs = append(inputs,
			potField("final_generated_code", codeDesc),
			potField("code_output", "output of previously-generated python code"))
		outputs = sig.Outputs()
	}
	modeInputs, modeOutputs, finalOutputs := backquoted(inputs), backquoted(outputs), backquoted(sig.Outputs())
	var instr []string
	switch mode {
	case "generate":
		instr = []string{
			"You will be given " + modeInputs + " and you will respond with " + modeOutputs + ".",
			"Generating executable Python code that programmatically computes the correct " + modeOutputs + ".",
			"After you're done with the computation and think you have the final output, make sure to submit your output by calling the preloaded function `SUBMIT()`.",
			`You must structure your output in a dict, like {"field_a": value_a, ...}, with the correct value mapping for the field(s): ` + finalOutputs + ".",
		}
	case "regenerate":
		instr = []string{
			"You are given " + modeInputs + " due to an error in previous code.",
			"Your task is to correct the error and provide the new `generated_code`.",
		}
	default:
		instr = []string{"Given the final code " + modeInputs + ", provide the final " + modeOutputs + "."}
	}
	return signature.New(inputs, outputs, strings.Join(instr, "\n"))
}

// Signature returns the signature the module was built for.
func (p *ProgramOfThought) Signature() *signature.Signature { return p.sig }

// InputNames are the signature's input fields.
func (p *ProgramOfThought) InputNames() []string {
	names := make([]string, p.sig.NumInputs())
	for i := range names {
		names[i] = p.sig.Input(i).Name
	}
	return names
}

// NamedPredictors returns the three predictors under DSPy's names.
func (p *ProgramOfThought) NamedPredictors() []module.NamedPredictor {
	return module.Children(
		module.Child{Name: "code_generate", Program: p.CodeGenerate},
		module.Child{Name: "code_regenerate", Program: p.CodeRegenerate},
		module.Child{Name: "generate_output", Program: p.GenerateOutput})
}

// Clone returns a copy with independent predictors; the pool is shared.
func (p *ProgramOfThought) Clone() module.Program {
	c := *p
	c.CodeGenerate = module.CloneAs(p.CodeGenerate)
	c.CodeRegenerate = module.CloneAs(p.CodeRegenerate)
	c.GenerateOutput = module.CloneAs(p.GenerateOutput)
	return &c
}

// Forward generates and runs code, regenerating it after each failure, and
// returns generate_output's prediction (the outputs and its reasoning).
// When max_iters attempts all fail it returns ErrMaxHops with the last
// error, as DSPy raises RuntimeError("Max hops reached...").
func (p *ProgramOfThought) Forward(ctx context.Context, inputs module.Inputs) (*example.Prediction, error) {
	return module.Traced(ctx, "ProgramOfThought", p.sig, inputs, func(ctx context.Context) (*example.Prediction, error) {
		return p.forward(ctx, inputs)
	})
}

func (p *ProgramOfThought) forward(ctx context.Context, inputs module.Inputs) (*example.Prediction, error) {
	pool, err := p.opts.poolFor(ctx)
	if err != nil {
		return nil, err
	}
	in := module.Inputs{}
	for i := range p.sig.NumInputs() {
		name := p.sig.Input(i).Name
		v, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("codeact: program of thought %s: missing input %q", p.sig, name)
		}
		in[name] = v
	}
	session, err := pool.NewSession(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("codeact: program of thought %s: %w", p.sig, err)
	}
	defer session.Close()

	var (
		usage lm.Usage
		cost  lm.Cost
	)
	attempt := func(gen *module.ChainOfThought) (code, output, problem string, err error) {
		pred, err := gen.Forward(ctx, in)
		if err != nil {
			return "", "", "", err
		}
		usage, cost = usage.Add(pred.Usage), cost.Add(pred.Cost)
		code, problem = ParseCode(pred.String("generated_code"))
		if problem != "" {
			return code, "", problem, nil
		}
		obs, err := session.Execute(ctx, code)
		if obs == nil {
			return code, "", "", err
		}
		if obs.Error != nil {
			return code, "", obs.ErrorText(), err
		}
		return code, obs.Output(), "", err
	}
	code, output, problem, err := attempt(p.CodeGenerate)
	for hop := 1; err == nil && problem != ""; hop++ {
		if hop == p.opts.maxIters {
			return nil, fmt.Errorf("%w: failed to run ProgramOfThought %s: %s", ErrMaxHops, p.sig, problem)
		}
		in["previous_code"], in["error"] = code, problem
		code, output, problem, err = attempt(p.CodeRegenerate)
	}
	if err != nil {
		return nil, fmt.Errorf("codeact: program of thought %s: %w", p.sig, err)
	}
	delete(in, "previous_code")
	delete(in, "error")
	in["final_generated_code"], in["code_output"] = code, output
	pred, err := p.GenerateOutput.Forward(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("codeact: program of thought %s: generate output: %w", p.sig, err)
	}
	pred.Usage, pred.Cost = usage.Add(pred.Usage), cost.Add(pred.Cost)
	return pred, nil
}
