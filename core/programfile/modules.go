package programfile

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/tool"
)

// ModuleSpec is the program: section, and each step of a multi-step
// program: one module, or (with Steps) a pipeline of named steps.
type ModuleSpec struct {
	// Module is the module kind: predict, chain_of_thought, react,
	// best_of_n, refine or multi_chain_comparison.
	Module string `yaml:"module"`
	// Signature is the signature string, e.g. "question -> answer".
	Signature string `yaml:"signature"`
	// Instructions replace the signature's default instructions.
	Instructions string `yaml:"instructions"`
	// Fields add descriptions to fields by name.
	Fields map[string]FieldSpec `yaml:"fields"`
	// Demos are few-shot examples (field name -> value), keys in the
	// file's order. Keys the signature lacks are kept but left out of
	// prompts, as DSPy does (Predict warns about them once).
	Demos []Demo `yaml:"demos"`
	// Config holds the predictor's own sampling parameters.
	Config *lm.Params `yaml:"config"`

	// Steps make a multi-step program: each step's outputs feed later
	// steps' inputs by name. A program has either Steps or one Module.
	Steps []StepSpec `yaml:"steps"`

	// Tools are the built-in tools of react and code_act: "calculator".
	Tools []string `yaml:"tools"`
	// MaxIters bounds the loop of react (default 20), code_act (default 5)
	// and program_of_thought (default 3).
	MaxIters int `yaml:"max_iters"`

	// N is how many rollouts best_of_n and refine try (default 3), and how
	// many attempts multi_chain_comparison compares (default 3).
	N int `yaml:"n"`
	// Threshold is the reward at which best_of_n and refine stop.
	Threshold *float64 `yaml:"threshold"`
	// Reward scores a rollout of best_of_n and refine.
	Reward *RewardSpec `yaml:"reward"`
	// Of is the module best_of_n and refine sample.
	Of *ModuleSpec `yaml:"of"`
}

// StepSpec is one step of a multi-step program.
type StepSpec struct {
	// Name names the step; its predictors are named "<name>.<...>".
	Name string `yaml:"name"`
	// Inputs maps the step's input fields to earlier fields of other names
	// (`context: passages`); unlisted inputs use the same name.
	Inputs     map[string]string `yaml:"inputs"`
	ModuleSpec `yaml:",inline"`
}

// FieldSpec describes one field.
type FieldSpec struct {
	Desc string `yaml:"desc"`
}

// Module kinds a program file may name.
const (
	ModulePredict        = "predict"
	ModuleChainOfThought = "chain_of_thought"
	ModuleReAct          = "react"
	ModuleBestOfN        = "best_of_n"
	ModuleRefine         = "refine"
	ModuleMCC            = "multi_chain_comparison"
)

var moduleKinds = []string{ModulePredict, ModuleChainOfThought, ModuleReAct, ModuleBestOfN, ModuleRefine, ModuleMCC}

// Module kinds that run on a plugin: the core knows their names, and the
// command that runs the file hands their builders in (WithModules).
const (
	ModuleCodeAct          = "code_act"
	ModuleProgramOfThought = "program_of_thought"
)

var pluginModuleKinds = []string{ModuleCodeAct, ModuleProgramOfThought}

// ModuleBuilder builds a module kind the core does not build itself
// (code_act and program_of_thought, from plugins/codeact, which the core
// may not import): from the module's spec, its signature (instructions and
// field descriptions applied) and its built-in tools, named in the file's
// order. It returns the program and the output fields it produces, in the
// order commands print them.
type ModuleBuilder func(m *ModuleSpec, sig *signature.Signature, tools []*tool.Tool) (module.Program, []signature.Field, error)

// Option configures LoadFile and Parse.
type Option func(*Spec)

// WithModules lets the file name the given module kinds; a kind the core
// builds itself cannot be replaced.
func WithModules(builders map[string]ModuleBuilder) Option {
	return func(s *Spec) {
		if s.modules == nil {
			s.modules = map[string]ModuleBuilder{}
		}
		for kind, b := range builders {
			if !slices.Contains(moduleKinds, kind) {
				s.modules[kind] = b
			}
		}
	}
}

// kinds lists the module kinds the file may name.
func (s *Spec) kinds() []string {
	kinds := slices.Clone(moduleKinds)
	for k := range s.modules {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds[len(moduleKinds):])
	return kinds
}

// builtinTools are the tools a program file's react module may name.
var builtinTools = map[string]func() *tool.Tool{
	"calculator": tool.Calculator,
}

// built is a built program, the output fields it produces, in order, and
// the signature whose inputs it reads (see inputSignature; nil for a
// pipeline).
type built struct {
	program module.Program
	outputs []signature.Field
	inputs  *signature.Signature
}

// NewProgram builds the module(s) the program: section describes.
func (s *Spec) NewProgram() (module.Program, error) {
	b, err := s.build()
	if err != nil {
		return nil, err
	}
	return b.program, nil
}

// Outputs lists the output fields the program produces, in the order
// commands print them (a pipeline's steps in order; reasoning first).
func (s *Spec) Outputs() ([]signature.Field, error) {
	b, err := s.build()
	if err != nil {
		return nil, err
	}
	return b.outputs, nil
}

// Signature is the signature of a single-module program (for a pipeline,
// its last step's).
func (s *Spec) Signature() (*signature.Signature, error) {
	if n := len(s.Program.Steps); n > 0 {
		return s.inputSignature(fmt.Sprintf("program.steps.%d", n-1), &s.Program.Steps[n-1].ModuleSpec)
	}
	return s.inputSignature("program", &s.Program)
}

// build builds the program: section; Parse calls it to check the file.
func (s *Spec) build() (*built, error) {
	p := &s.Program
	if len(p.Steps) == 0 {
		return s.buildModule("program", p)
	}
	if p.Module != "" || p.Signature != "" {
		return nil, s.errorf("program", nil, "give either module and signature, or steps, not both")
	}
	var steps []module.Step
	var outputs []signature.Field
	available := map[string]bool{}
	for i := range p.Steps {
		st := &p.Steps[i]
		field := fmt.Sprintf("program.steps.%d", i)
		if st.Name == "" || strings.Contains(st.Name, ".") {
			return nil, s.errorf(field+".name", nil, "required: a name without dots (its predictors are named <name>.<...>)")
		}
		b, err := s.buildModule(field, &st.ModuleSpec)
		if err != nil {
			return nil, err
		}
		// Later steps' inputs must come from the program's inputs or
		// earlier steps; only the first step's inputs are the program's.
		sig := b.inputs
		for k := range st.Inputs {
			if !sig.IsInput(k) {
				return nil, s.errorf(field+".inputs", nil, "%q is not an input of step %q (%s)", k, st.Name, sig.String())
			}
		}
		if i > 0 {
			for j := range sig.NumInputs() {
				in := sig.Input(j).Name
				src := in
				if m, ok := st.Inputs[in]; ok {
					src = m
				}
				if !available[src] {
					return nil, s.errorf(field, nil, "step %q needs %q, which no earlier step produces and the first step does not take", st.Name, src)
				}
			}
		} else {
			for j := range sig.NumInputs() {
				available[sig.Input(j).Name] = true
			}
		}
		for _, f := range b.outputs {
			available[f.Name] = true
			if !slices.ContainsFunc(outputs, func(o signature.Field) bool { return o.Name == f.Name }) {
				outputs = append(outputs, f)
			}
		}
		steps = append(steps, module.Step{Name: st.Name, Program: b.program, Inputs: st.Inputs})
	}
	pl, err := module.NewPipeline(steps...)
	if err != nil {
		return nil, s.errorf("program.steps", err, "%v", err)
	}
	return &built{program: pl, outputs: outputs}, nil
}

// inputSignature is the signature whose inputs a module reads: its own,
// or, for best_of_n and refine, the sampled module's.
func (s *Spec) inputSignature(field string, m *ModuleSpec) (*signature.Signature, error) {
	for (m.Module == ModuleBestOfN || m.Module == ModuleRefine) && m.Of != nil {
		field, m = field+".of", m.Of
	}
	return s.signatureOf(field, m)
}

func (s *Spec) signatureOf(field string, m *ModuleSpec) (*signature.Signature, error) {
	if strings.TrimSpace(m.Signature) == "" {
		return nil, s.errorf(field+".signature", nil, "required, e.g. \"question -> answer\"")
	}
	sig, err := signature.Parse(m.Signature)
	if err != nil {
		return nil, s.errorf(field+".signature", err, "%v", err)
	}
	sig = sig.WithInstructions(m.Instructions)
	for name, f := range m.Fields {
		if sig, err = sig.WithDesc(name, f.Desc); err != nil {
			return nil, s.errorf(field+".fields."+name, err, "no field %q in signature %q", name, m.Signature)
		}
	}
	return sig, nil
}

func predictOptions(m *ModuleSpec) []module.PredictOption {
	var opts []module.PredictOption
	if len(m.Demos) > 0 {
		demos := make([]example.Example, len(m.Demos))
		for i, d := range m.Demos {
			demos[i] = example.FromObject(example.Object(d))
		}
		opts = append(opts, module.WithDemos(demos...))
	}
	if m.Config != nil {
		opts = append(opts, module.WithConfig(*m.Config))
	}
	return opts
}

func (s *Spec) buildModule(field string, m *ModuleSpec) (*built, error) {
	if m.Module == "" {
		return nil, s.errorf(field+".module", nil, "required: one of %s", strings.Join(s.kinds(), ", "))
	}
	if build, ok := s.modules[m.Module]; ok {
		return s.buildPluginModule(field, m, build)
	}
	if slices.Contains(pluginModuleKinds, m.Module) {
		return nil, s.errorf(field+".module", nil, "%s runs on the interpreter plugin, which this command does not start; run the file with dspex run, eval, optimize or serve", m.Module)
	}
	if !slices.Contains(moduleKinds, m.Module) {
		return nil, s.errorf(field+".module", nil, "%q is not a module; expected one of %s", m.Module, strings.Join(s.kinds(), ", "))
	}
	if m.Module == ModuleBestOfN || m.Module == ModuleRefine {
		return s.buildSampler(field, m)
	}
	sig, err := s.signatureOf(field, m)
	if err != nil {
		return nil, err
	}
	switch m.Module {
	case ModulePredict:
		return &built{module.NewPredict(sig, predictOptions(m)...), sig.Outputs(), sig}, nil
	case ModuleChainOfThought:
		cot := module.NewChainOfThought(sig, predictOptions(m)...)
		return &built{cot, cot.Predict.Signature().Outputs(), sig}, nil
	case ModuleMCC:
		mcc, err := module.NewMultiChainComparison(sig, m.N) // N <= 0: DSPy's default, 3
		if err != nil {
			return nil, s.errorf(field, err, "%v", err)
		}
		return &built{mcc, mcc.Predict.Signature().Outputs(), sig}, nil
	case ModuleReAct:
		if len(m.Tools) == 0 {
			return nil, s.errorf(field+".tools", nil, "react needs tools; built-in tools: %s", strings.Join(toolNames(), ", "))
		}
		tools, err := s.builtinTools(field, m)
		if err != nil {
			return nil, err
		}
		var opts []module.ReActOption
		if m.MaxIters > 0 {
			opts = append(opts, module.MaxIters(m.MaxIters))
		}
		r, err := module.NewReAct(sig, tools, opts...)
		if err != nil {
			return nil, s.errorf(field, err, "%v", err)
		}
		return &built{r, append([]signature.Field{{Name: module.TrajectoryField}}, sig.Outputs()...), sig}, nil
	}
	return nil, s.errorf(field+".module", nil, "unsupported module %q", m.Module)
}

// builtinTools makes the built-in tools a module names.
func (s *Spec) builtinTools(field string, m *ModuleSpec) ([]*tool.Tool, error) {
	var tools []*tool.Tool
	for i, name := range m.Tools {
		mk, ok := builtinTools[name]
		if !ok {
			return nil, s.errorf(fmt.Sprintf("%s.tools.%d", field, i), nil, "%q is not a built-in tool; built-in tools: %s", name, strings.Join(toolNames(), ", "))
		}
		tools = append(tools, mk())
	}
	return tools, nil
}

// buildPluginModule builds a kind handed in with WithModules.
func (s *Spec) buildPluginModule(field string, m *ModuleSpec, build ModuleBuilder) (*built, error) {
	sig, err := s.signatureOf(field, m)
	if err != nil {
		return nil, err
	}
	tools, err := s.builtinTools(field, m)
	if err != nil {
		return nil, err
	}
	prog, outputs, err := build(m, sig, tools)
	if err != nil {
		return nil, s.errorf(field, err, "%v", err)
	}
	return &built{prog, outputs, sig}, nil
}

func toolNames() []string {
	var names []string
	for n := range builtinTools {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// RewardSpec scores the rollouts of best_of_n and refine with an LM judge.
type RewardSpec struct {
	// Judge is the judge's signature, e.g. "question, answer -> correct: bool".
	// Its inputs are read by name from the rollout's inputs and outputs; its
	// first output is the reward: true is 1 and false 0, numbers as they
	// are.
	Judge string `yaml:"judge"`
	// Instructions for the judge.
	Instructions string `yaml:"instructions"`
}

func (s *Spec) buildSampler(field string, m *ModuleSpec) (*built, error) {
	if m.Of == nil {
		return nil, s.errorf(field+".of", nil, "required: the module %s samples, e.g. of: {module: chain_of_thought, signature: ...}", m.Module)
	}
	if m.Of.Module == ModuleBestOfN || m.Of.Module == ModuleRefine {
		return nil, s.errorf(field+".of.module", nil, "%s cannot sample another %s", m.Module, m.Of.Module)
	}
	inner, err := s.buildModule(field+".of", m.Of)
	if err != nil {
		return nil, err
	}
	if m.Reward == nil || strings.TrimSpace(m.Reward.Judge) == "" {
		return nil, s.errorf(field+".reward", nil, `required: reward: {judge: "inputs, outputs -> score: float"}`)
	}
	judgeSig, err := signature.Parse(m.Reward.Judge)
	if err != nil {
		return nil, s.errorf(field+".reward.judge", err, "%v", err)
	}
	judgeSig = judgeSig.WithInstructions(m.Reward.Instructions)
	for i := range judgeSig.NumInputs() {
		name := judgeSig.Input(i).Name
		if !inner.inputs.IsInput(name) && !slices.ContainsFunc(inner.outputs, func(f signature.Field) bool { return f.Name == name }) {
			return nil, s.errorf(field+".reward.judge", nil, "the judge reads %q, which is neither an input nor an output of the sampled module", name)
		}
	}
	switch k := judgeSig.Output(0).Type.Kind; k {
	case signature.Bool, signature.Int, signature.Float:
	default:
		return nil, s.errorf(field+".reward.judge", nil, "the judge's first output must be bool, int or float, not %s", judgeSig.Output(0).Type.PythonName())
	}
	n := m.N
	if n == 0 {
		n = 3
	}
	threshold := 1.0
	if m.Threshold != nil {
		threshold = *m.Threshold
	}
	reward := judgeReward(module.NewPredict(judgeSig))
	var prog module.Program
	if m.Module == ModuleRefine {
		prog = module.NewRefine(inner.program, n, reward, threshold)
	} else {
		prog = module.NewBestOfN(inner.program, n, reward, threshold)
	}
	return &built{prog, inner.outputs, inner.inputs}, nil
}

// judgeReward asks judge to score a rollout.
func judgeReward(judge *module.Predict) module.RewardFunc {
	sig := judge.Signature()
	out := sig.Output(0).Name
	return func(ctx context.Context, inputs module.Inputs, pred *example.Prediction) (float64, error) {
		in := module.Inputs{}
		for i := range sig.NumInputs() {
			name := sig.Input(i).Name
			if v, ok := pred.Get(name); ok {
				in[name] = v
			} else if v, ok := inputs[name]; ok {
				in[name] = v
			}
		}
		verdict, err := judge.Forward(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("reward judge: %w", err)
		}
		switch v, _ := verdict.Get(out); x := v.(type) {
		case bool:
			if x {
				return 1, nil
			}
			return 0, nil
		default:
			return verdict.Float(out)
		}
	}
}
