package program

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dspex/dspex/internal/pyjson"
)

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
