package cli

import (
	"errors"
	"fmt"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/programfile"
	"github.com/dspex/dspex/plugins/codeact"
)

// programModules lets program files name the modules that run on plugins:
// code_act and program_of_thought (plugins/codeact).
func programModules() programfile.Option {
	return programfile.WithModules(codeact.ProgramFileModules())
}

// interpreterHint says what makes the interpreter plugin run.
const interpreterHint = "code_act and program_of_thought run Python in the interpreter plugin, which needs dspex_plugins: " +
	"set DSPEX_PYTHON (or plugins.python in the program file) to a Python that has it, installed with pip from the repository (see docs/codeact.md)"

// openInterpreters returns the interpreter pool of a program that has
// code_act or program_of_thought modules (nil for one that has none),
// configured by the program file's plugins: section over the built-in
// registry. It starts nothing: the first execution does.
func openInterpreters(spec *programfile.Spec, bus *event.Bus) (*codeact.Pool, error) {
	if !codeact.UsesInterpreter(spec) {
		return nil, nil
	}
	pcfg := bridge.DefaultConfig()
	if spec.File() != "" {
		var err error
		if pcfg, err = bridge.LoadConfig(spec.File()); err != nil {
			return nil, err
		}
	}
	pool, err := codeact.NewPool(codeact.Config{Plugins: &pcfg, Bus: bus})
	if err != nil {
		if errors.Is(err, bridge.ErrPythonNotFound) {
			err = fmt.Errorf("%w; %s", err, interpreterHint)
		}
		return nil, err
	}
	return pool, nil
}
