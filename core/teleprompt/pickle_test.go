package teleprompt

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/pyjson"
)

// TestDSPyTraceHash compares dspyTraceHash with DSPy's Hasher.hash of the
// same demos tuples (testdata/golden/optimizers/pickle_hash.json, written
// by gen_dspy_optimizers.py): every scalar type, integers of every pickle
// width, singletons, shared inputs, frames past 64 KiB, strings written
// outside frames, and memo indices past 255.
func TestDSPyTraceHash(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/golden/optimizers/pickle_hash.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := pyjson.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	cases := v.([]any)
	if len(cases) != 5 {
		t.Fatalf("%d cases, want 5", len(cases))
	}
	for _, c := range cases {
		obj := c.(pyjson.Object)
		name, _ := obj.Get("name")
		want, _ := obj.Get("hash")
		t.Run(name.(string), func(t *testing.T) {
			var demos []traceParts
			switch name {
			case "large": // as gen_dspy_optimizers.py builds it
				for i := range 40 {
					n := 5000 + i
					if i == 3 {
						n = 100_000
					}
					demos = append(demos, traceParts{
						inputs:  []kv{{"question", fmt.Sprintf("q%d ", i) + strings.Repeat("x", n)}},
						outputs: []kv{{"answer", fmt.Sprintf("a%d", i)}},
					})
				}
			case "many":
				for i := range 300 {
					demos = append(demos, traceParts{
						inputs:  []kv{{"question", fmt.Sprintf("question %d", i)}},
						outputs: []kv{{"answer", fmt.Sprintf("answer %d", i)}, {"reasoning", strings.Repeat("r", i%300)}},
					})
				}
			default:
				ds, _ := obj.Get("demos")
				for _, d := range ds.([]any) {
					parts := d.([]any)
					demos = append(demos, traceParts{inputs: pairs(parts[0]), outputs: pairs(parts[1])})
				}
			}
			got, ok := dspyTraceHash(demos)
			if !ok || got != want {
				t.Errorf("hash %s (%v), DSPy %s", got, ok, want)
			}
		})
	}
}

func pairs(v any) []kv {
	var out []kv
	for _, p := range v.([]any) {
		p := p.([]any)
		out = append(out, kv{p[0].(string), p[1]})
	}
	return out
}

// Values a pickle cannot be reproduced for fall back to another seed.
func TestDSPyTraceHashRefusesContainers(t *testing.T) {
	for _, v := range []any{[]any{"a"}, pyjson.Object{{Key: "k", Value: 1}}, map[string]any{"k": 1}, []string{"a"}} {
		if _, ok := dspyTraceHash([]traceParts{{outputs: []kv{{"answer", v}}}, {outputs: []kv{{"answer", "x"}}}}); ok {
			t.Errorf("hash of %#v reported reproducible", v)
		}
	}
}

// Demos with a list or object field are seeded by their Python-style JSON
// (docs/optimizers.md): the same demos give the same seed, other demos
// another.
func TestTraceSeedFallback(t *testing.T) {
	parts := func(args any) []traceParts {
		return []traceParts{
			{inputs: []kv{{"question", "q"}}, outputs: []kv{{"next_tool_args", args}}},
			{inputs: []kv{{"question", "q"}}, outputs: []kv{{"next_tool_args", "done"}}},
		}
	}
	a := traceSeed(parts(pyjson.Object{{Key: "x", Value: int64(1)}}))
	if len(a) != 64 || a != traceSeed(parts(pyjson.Object{{Key: "x", Value: int64(1)}})) {
		t.Errorf("seed %q is not a stable SHA-256 hex digest", a)
	}
	if a == traceSeed(parts(pyjson.Object{{Key: "x", Value: int64(2)}})) {
		t.Error("different demos give the same seed")
	}
}
