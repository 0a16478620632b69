package pyrand_test

import (
	"fmt"

	"github.com/dspex/dspex/core/pyrand"
)

// The same seed gives the same draws as Python's random.Random(42).
func Example() {
	r := pyrand.New(42)
	fmt.Println(r.Random())
	n, _ := r.Randint(1, 6)
	fmt.Println(n)
	// Output:
	// 0.6394267984578837
	// 1
}

// Sample picks what random.Random(0).sample(range(10), 3) picks.
func ExampleRand_Sample() {
	r := pyrand.New(0)
	idx, err := r.Sample(10, 3)
	fmt.Println(idx, err)
	// Output: [6 9 0] <nil>
}

// Shuffle shuffles as random.Random(7).shuffle(["a", "b", "c", "d"]).
func ExampleShuffle() {
	x := []string{"a", "b", "c", "d"}
	pyrand.Shuffle(pyrand.New(7), x)
	fmt.Println(x)
	// Output: [d b a c]
}

// A demo set drawn as DSPy's LabeledFewShot draws it:
// random.Random(0).sample(trainset, k).
func ExampleSample() {
	trainset := []string{"q1", "q2", "q3", "q4", "q5", "q6"}
	demos, err := pyrand.Sample(pyrand.New(0), trainset, 2)
	fmt.Println(demos, err)
	// Output: [q4 q6] <nil>
}

// DSPy's BootstrapFewShot seeds with a str (a SHA-256 hex digest of the
// demos): random.Random(s) is NewBytes([]byte(s)).
func ExampleNewBytes() {
	r := pyrand.NewBytes([]byte("2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"))
	coin := r.Random() < 0.5
	demo, _ := pyrand.Choice(r, []string{"d1", "d2", "d3"})
	fmt.Println(coin, demo)
	// Output: false d1
}
