package example_test

import (
	"fmt"

	"github.com/dspex/dspex/core/example"
)

// Examples read from JSON keep their keys, and the keys of nested objects,
// in the order written, and integers of any size, as DSPy's do; an example
// built from a Go map has sorted keys.
func ExampleFromObject() {
	var e example.Example
	_ = e.UnmarshalJSON([]byte(`{"query": {"zeta": 1, "alpha": 2}, "n": 12345678901234567890}`))
	fmt.Println(e.Keys(), e.String("query"), e.String("n"))

	d := example.FromObject(example.Object{{Key: "question", Value: "2+2?"}, {Key: "answer", Value: "4"}})
	fmt.Println(d.Keys())
	fmt.Println(example.New(map[string]any{"question": "2+2?", "answer": "4"}).Keys())
	// Output:
	// [query n] {'zeta': 1, 'alpha': 2} 12345678901234567890
	// [question answer]
	// [answer question]
}
