package module

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// CloneAs clones p and keeps its type: cot2 := module.CloneAs(cot).
func CloneAs[P Program](p P) P {
	return p.Clone().(P)
}

// Child is one named part of a composite program.
type Child struct {
	Name    string
	Program Program
}

// Children lists the predictors of a program's parts under dotted names, as
// DSPy names them: a part named "generate" holding a ChainOfThought
// contributes "generate.predict"; a part that is a bare Predict contributes
// just "generate". A composite program's NamedPredictors is usually
//
//	func (p *RAG) NamedPredictors() []module.NamedPredictor {
//		return module.Children(module.Child{"generate", p.Generate})
//	}
func Children(children ...Child) []NamedPredictor {
	var out []NamedPredictor
	for _, c := range children {
		if c.Program == nil {
			continue
		}
		for _, np := range c.Program.NamedPredictors() {
			name := c.Name
			if np.Name != "self" {
				name += "." + np.Name
			}
			out = append(out, NamedPredictor{Name: name, Predictor: np.Predictor})
		}
	}
	return out
}

// Step is one stage of a Pipeline: a program, its name (the prefix of its
// predictors' names), and where its inputs come from.
type Step struct {
	Name    string
	Program Program
	// Inputs maps the step's input fields to fields of the pipeline's
	// state (the pipeline's inputs plus every earlier step's outputs).
	// Fields not listed are taken from the state under the same name.
	Inputs map[string]string
}

// Pipeline runs steps in order, each reading its inputs from the pipeline's
// inputs and the outputs of the steps before it, and returns the last
// step's prediction with every step's outputs merged in (later steps win).
type Pipeline struct {
	Steps []Step
	// inputs lists, per step, the input field names it needs (from its
	// signature), computed at construction.
	inputs [][]string
}

var _ Program = (*Pipeline)(nil)

// InputNamer is implemented by programs that can say which input fields
// they read (every Predict-based module can).
type InputNamer interface {
	InputNames() []string
}

// NewPipeline builds a pipeline. Step names must be unique and non-empty.
func NewPipeline(steps ...Step) (*Pipeline, error) {
	seen := map[string]bool{}
	p := &Pipeline{Steps: steps}
	for i, s := range steps {
		if s.Name == "" || strings.Contains(s.Name, ".") {
			return nil, fmt.Errorf("module: pipeline step %d: name %q must be non-empty and without dots", i+1, s.Name)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("module: pipeline step %d: duplicate name %q", i+1, s.Name)
		}
		seen[s.Name] = true
		if s.Program == nil {
			return nil, fmt.Errorf("module: pipeline step %q has no program", s.Name)
		}
		var names []string
		if n, ok := s.Program.(InputNamer); ok {
			names = n.InputNames()
		}
		p.inputs = append(p.inputs, names)
	}
	return p, nil
}

// Forward runs the steps in order.
func (p *Pipeline) Forward(ctx context.Context, inputs Inputs) (*example.Prediction, error) {
	return Traced(ctx, "Pipeline", nil, inputs, func(ctx context.Context) (*example.Prediction, error) {
		state := maps.Clone(inputs)
		var last *example.Prediction
		merged := map[string]any{}
		var usage lm.Usage
		var cost lm.Cost
		for i, s := range p.Steps {
			in := make(Inputs, len(p.inputs[i]))
			for _, name := range p.inputs[i] {
				src := name
				if m, ok := s.Inputs[name]; ok {
					src = m
				}
				if v, ok := state[src]; ok {
					in[name] = v
				}
			}
			if p.inputs[i] == nil { // a program that does not name its inputs gets the whole state
				in = maps.Clone(state)
			}
			pred, err := s.Program.Forward(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("pipeline step %q: %w", s.Name, err)
			}
			for k, v := range pred.Map() {
				state[k] = v
				merged[k] = v
			}
			last = pred
			usage, cost = usage.Add(pred.Usage), cost.Add(pred.Cost)
		}
		if last == nil {
			return example.NewPrediction(), nil
		}
		out := example.NewPrediction(merged)
		out.Usage, out.Cost = usage, cost
		return out, nil
	})
}

// NamedPredictors lists the steps' predictors, prefixed by step names.
func (p *Pipeline) NamedPredictors() []NamedPredictor {
	children := make([]Child, len(p.Steps))
	for i, s := range p.Steps {
		children[i] = Child{s.Name, s.Program}
	}
	return Children(children...)
}

// Clone copies every step's program.
func (p *Pipeline) Clone() Program {
	steps := make([]Step, len(p.Steps))
	for i, s := range p.Steps {
		steps[i] = Step{Name: s.Name, Program: s.Program.Clone(), Inputs: maps.Clone(s.Inputs)}
	}
	return &Pipeline{Steps: steps, inputs: p.inputs}
}

// InputNames are the predictor's input fields.
func (p *Predict) InputNames() []string { return inputNames(p.Signature()) }

// inputNames lists sig's input fields in order.
func inputNames(sig *signature.Signature) []string {
	names := make([]string, sig.NumInputs())
	for i := range names {
		names[i] = sig.Input(i).Name
	}
	return names
}

// InputNames are the underlying predictor's input fields.
func (c *ChainOfThought) InputNames() []string { return c.Predict.InputNames() }
