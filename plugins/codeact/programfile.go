package codeact

import (
	"errors"

	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/programfile"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/tool"
)

// ProgramFileModules are the builders of `module: code_act` and `module:
// program_of_thought` for core/programfile (programfile.WithModules). The
// modules find their interpreter pool in the context they run in
// (WithPool). code_act takes `tools:` (built-in tools, possibly none) and
// `max_iters:` (default 5); program_of_thought takes `max_iters:` (default
// 3) and no tools.
func ProgramFileModules() map[string]programfile.ModuleBuilder {
	return map[string]programfile.ModuleBuilder{
		programfile.ModuleCodeAct: func(m *programfile.ModuleSpec, sig *signature.Signature, tools []*tool.Tool) (module.Program, []signature.Field, error) {
			var opts []Option
			if m.MaxIters > 0 {
				opts = append(opts, MaxIters(m.MaxIters))
			}
			ca, err := NewCodeAct(sig, tools, opts...)
			if err != nil {
				return nil, nil, err
			}
			return ca, append([]signature.Field{{Name: TrajectoryField}}, sig.Outputs()...), nil
		},
		programfile.ModuleProgramOfThought: func(m *programfile.ModuleSpec, sig *signature.Signature, tools []*tool.Tool) (module.Program, []signature.Field, error) {
			if len(tools) > 0 {
				return nil, nil, errProgramOfThoughtTools
			}
			var opts []Option
			if m.MaxIters > 0 {
				opts = append(opts, MaxIters(m.MaxIters))
			}
			pot, err := NewProgramOfThought(sig, opts...)
			if err != nil {
				return nil, nil, err
			}
			return pot, pot.GenerateOutput.Predict.Signature().Outputs(), nil
		},
	}
}

var errProgramOfThoughtTools = errors.New("program_of_thought takes no tools: its code computes the answer (use code_act for tools)")

// UsesInterpreter reports whether a program file's program: section names
// a module that runs on the interpreter plugin.
func UsesInterpreter(spec *programfile.Spec) bool {
	return usesInterpreter(&spec.Program)
}

func usesInterpreter(m *programfile.ModuleSpec) bool {
	if m == nil {
		return false
	}
	if m.Module == programfile.ModuleCodeAct || m.Module == programfile.ModuleProgramOfThought {
		return true
	}
	for i := range m.Steps {
		if usesInterpreter(&m.Steps[i].ModuleSpec) {
			return true
		}
	}
	return usesInterpreter(m.Of)
}
