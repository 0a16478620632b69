package programfile

import (
	"errors"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dspex/dspex/core/pyjson"
)

// FuzzParse feeds program files to Parse: it must never panic, every
// refusal must be a *FileError naming the file, and a file it accepts must
// build its signature, outputs and program without panicking.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../examples/qa/program.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"lm:\n  model: m\nprogram:\n  module: predict\n  signature: \"question -> answer\"\n",
		"lm: {model: m, headers: {X-Key: \"${K:-v}\"}}\nprogram: {module: chain_of_thought, signature: \"a, b: list[str] -> c: int\"}\n",
		"lm: {model: m}\nprogram:\n  module: pipeline\n  steps:\n    - {name: s1, module: predict, signature: \"q -> a\"}\n    - {name: s2, module: predict, signature: \"a -> b\"}\n",
		"lm: {model: m}\nprogram: {module: best_of_n, n: 3, of: {module: predict, signature: \"q -> a\"}}\n",
		"lm: {model: m}\nprogram: {module: predict, signature: \"q -> a\", demos: [{q: x, a: y}]}\ncache: {disabled: true}\n",
		"lm:\n  model: &a m\n  base_url: *a\n",
		"{}", "", "- 1\n- 2\n", "lm: [\n", "\t", "lm: {model: m}\nprogram: {module: x}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse("fuzz.yaml", data)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error is %T, not a *FileError: %v", err, err)
			}
			if fe.File != "fuzz.yaml" {
				t.Fatalf("Parse error names file %q, want fuzz.yaml: %v", fe.File, err)
			}
			return
		}
		_, _ = spec.Signature()
		_, _ = spec.Outputs()
		_, _ = spec.NewProgram()
		_ = spec.NewAdapter()
	})
}

// FuzzDemoYAML reads arbitrary YAML as a demo: it never panics, and a demo
// it accepts is a JSON model value that survives a JSON round trip in the
// same order.
func FuzzDemoYAML(f *testing.F) {
	for _, s := range []string{
		"{a: 1, b: {z: 1, y: [1, 2.5, null]}}",
		"{n: 12345678901234567890, m: -0x1_0000_0000_0000_0000, o: 0o17}",
		"{a: &x [1, 2], b: *x, c: [*x, *x]}",
		"q: \"x\"\nlist:\n  - {b: 1, a: 2}\n",
		"[1, 2]",
		"{? [a]: 1}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d Demo
		if err := yaml.Unmarshal([]byte(s), &d); err != nil {
			return
		}
		once := pyjson.Dumps(pyjson.Object(d), -1)
		v, err := pyjson.Decode([]byte(once))
		if err != nil {
			// Python spells non-finite floats outside JSON.
			return
		}
		if twice := pyjson.Dumps(v, -1); twice != once {
			t.Fatalf("demo %q: %s, then %s", s, once, twice)
		}
	})
}
