package programfile

import (
	"strings"
	"testing"

	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/tool"
)

const codeActFile = `lm: {model: m}
program:
  module: code_act
  signature: "question -> answer: int"
  instructions: Compute it.
  tools: [calculator]
  max_iters: 4
`

// The core knows code_act and program_of_thought by name only: without a
// builder handed in they are refused with what to do; with one, the
// builder gets the signature, the built-in tools and the spec.
func TestPluginModules(t *testing.T) {
	_, err := Parse("p.yaml", []byte(codeActFile))
	if err == nil || !strings.Contains(err.Error(), "code_act runs on the interpreter plugin") {
		t.Fatalf("without a builder: %v", err)
	}
	var gotSig *signature.Signature
	var gotTools []*tool.Tool
	var gotIters int
	build := func(m *ModuleSpec, sig *signature.Signature, tools []*tool.Tool) (module.Program, []signature.Field, error) {
		gotSig, gotTools, gotIters = sig, tools, m.MaxIters
		return module.NewPredict(sig), sig.Outputs(), nil
	}
	spec, err := Parse("p.yaml", []byte(codeActFile), WithModules(map[string]ModuleBuilder{ModuleCodeAct: build, ModulePredict: build}))
	if err != nil {
		t.Fatal(err)
	}
	if gotSig.Instructions() != "Compute it." || len(gotTools) != 1 || gotTools[0].Name() != "calculator" || gotIters != 4 {
		t.Errorf("builder got %v, %d tools, max_iters %d", gotSig, len(gotTools), gotIters)
	}
	if _, err := spec.NewProgram(); err != nil {
		t.Fatal(err)
	}
	// A kind the core builds itself is not replaced.
	gotSig = nil
	spec, err = Parse("p.yaml", []byte("lm: {model: m}\nprogram: {module: predict, signature: \"a -> b\"}\n"), WithModules(map[string]ModuleBuilder{ModulePredict: build}))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := spec.NewProgram(); p == nil || gotSig != nil {
		t.Fatalf("predict was built by the handed-in builder (program %v)", p)
	}
	_, err = Parse("p.yaml", []byte("lm: {model: m}\nprogram: {module: nope, signature: \"a -> b\"}\n"), WithModules(map[string]ModuleBuilder{ModuleCodeAct: build}))
	if err == nil || !strings.Contains(err.Error(), "multi_chain_comparison, code_act") {
		t.Errorf("unknown kind: %v", err)
	}
}
