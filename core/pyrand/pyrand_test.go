package pyrand

import (
	"errors"
	"math"
	"math/big"
	"slices"
	"testing"
)

// Values printed by CPython 3.11.
func TestKnownValues(t *testing.T) {
	r := New(42)
	if got, want := r.Random(), 0.6394267984578837; got != want {
		t.Errorf("Random(42).random() = %v, want %v", got, want)
	}
	r = New(0)
	idx, err := r.Sample(10, 3)
	if err != nil || !slices.Equal(idx, []int{6, 9, 0}) {
		t.Errorf("Random(0).sample(range(10), 3) = %v, %v; want [6 9 0]", idx, err)
	}
}

func TestSeedSign(t *testing.T) {
	for _, seed := range []int64{1, 3, 1 << 40, math.MaxInt64} {
		a, b := New(seed), New(-seed)
		if a.GetState() != b.GetState() {
			t.Errorf("New(%d) and New(%d) differ; Python seeds by |seed|", seed, -seed)
		}
		c := NewBig(big.NewInt(-seed))
		if a.GetState() != c.GetState() {
			t.Errorf("New(%d) and NewBig(%d) differ", seed, -seed)
		}
	}
	if New(0).GetState() != NewBig(nil).GetState() {
		t.Error("NewBig(nil) differs from New(0)")
	}
}

// A call that fails leaves the generator where it was, as in CPython.
func TestErrorsConsumeNothing(t *testing.T) {
	tests := []struct {
		name string
		call func(r *Rand) error
		want error
	}{
		{"randrange empty", func(r *Rand) error { _, err := r.Randrange(5, 5, 1); return err }, ErrEmptyRange},
		{"randrange empty step", func(r *Rand) error { _, err := r.Randrange(0, 10, -2); return err }, ErrEmptyRange},
		{"randrange zero step", func(r *Rand) error { _, err := r.Randrange(0, 10, 0); return err }, ErrZeroStep},
		{"randint", func(r *Rand) error { _, err := r.Randint(1, 0); return err }, ErrEmptyRange},
		{"randint extremes", func(r *Rand) error { _, err := r.Randint(math.MaxInt, math.MinInt); return err }, ErrEmptyRange},
		{"choice", func(r *Rand) error { _, err := r.Choice(0); return err }, ErrEmptySequence},
		{"choice generic", func(r *Rand) error { _, err := Choice(r, []string{}); return err }, ErrEmptySequence},
		{"sample", func(r *Rand) error { _, err := r.Sample(3, 4); return err }, ErrSampleSize},
		{"sample negative", func(r *Rand) error { _, err := Sample(r, []int{1}, -1); return err }, ErrSampleSize},
		{"getrandbits negative", func(r *Rand) error { _, err := r.Getrandbits(-1); return err }, ErrNegativeBits},
		{"getrandbits 65", func(r *Rand) error { _, err := r.Getrandbits(65); return err }, ErrTooManyBits},
		{"getrandbitsbig negative", func(r *Rand) error { _, err := r.GetrandbitsBig(-1); return err }, ErrNegativeBits},
		{"randbytes negative", func(r *Rand) error { _, err := r.Randbytes(-1); return err }, ErrNegativeBits},
		{"choices weights length", func(r *Rand) error { _, err := r.Choices(3, 1, []float64{1}); return err }, ErrWeights},
		{"choices weights zero", func(r *Rand) error { _, err := r.Choices(2, 1, []float64{0, 0}); return err }, ErrWeights},
		{"choices weights nan", func(r *Rand) error { _, err := r.Choices(2, 1, []float64{1, math.NaN()}); return err }, ErrWeights},
		{"choices weights none", func(r *Rand) error { _, err := r.Choices(0, 1, []float64{}); return err }, ErrEmptySequence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(7)
			r.Random() // not at a regeneration boundary
			before := r.GetState()
			err := tt.call(r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if r.GetState() != before {
				t.Error("a failed call changed the state")
			}
		})
	}
}

// choices over no elements draws once before it fails, as in CPython, where
// random() runs before the population is indexed.
func TestChoicesEmptyPopulationDraws(t *testing.T) {
	r, ref := New(3), New(3)
	if _, err := r.Choices(0, 2, nil); !errors.Is(err, ErrEmptySequence) {
		t.Fatalf("error %v, want ErrEmptySequence", err)
	}
	ref.Random()
	if r.GetState() != ref.GetState() {
		t.Error("Choices(0, 2, nil) did not consume exactly one random()")
	}
}

func TestStateRoundTrip(t *testing.T) {
	r := New(2024)
	r.Gauss(0, 1) // leaves gauss_next set
	saved := r.GetState()
	want := []float64{r.Gauss(0, 1), r.Random(), r.Gauss(1, 2)}
	if err := r.SetState(saved); err != nil {
		t.Fatal(err)
	}
	got := []float64{r.Gauss(0, 1), r.Random(), r.Gauss(1, 2)}
	if !slices.Equal(got, want) {
		t.Errorf("after SetState: %v, want %v", got, want)
	}
	for _, idx := range []int{-1, mtN + 1} {
		bad := saved
		bad.Index = idx
		if err := r.SetState(bad); !errors.Is(err, ErrInvalidState) {
			t.Errorf("SetState(index %d) error %v, want ErrInvalidState", idx, err)
		}
	}
}

func TestSeedResetsGauss(t *testing.T) {
	r := New(5)
	r.Gauss(0, 1)
	r.Seed(5)
	if r.GetState() != New(5).GetState() {
		t.Error("Seed kept gauss_next; Python's seed() clears it")
	}
}

func TestGenericsMatchIndices(t *testing.T) {
	pop := []string{"a", "b", "c", "d", "e", "f", "g"}
	r1, r2 := New(11), New(11)
	got, err := Sample(r1, pop, 4)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := r2.Sample(len(pop), 4)
	for i, j := range idx {
		if got[i] != pop[j] {
			t.Fatalf("Sample = %v, indices %v", got, idx)
		}
	}
	c, _ := Choice(r1, pop)
	j, _ := r2.Choice(len(pop))
	if c != pop[j] {
		t.Errorf("Choice = %q, index %d", c, j)
	}
	x := slices.Clone(pop)
	Shuffle(r1, x)
	perm := []int{0, 1, 2, 3, 4, 5, 6}
	r2.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	for i, j := range perm {
		if x[i] != pop[j] {
			t.Fatalf("Shuffle = %v, permutation %v", x, perm)
		}
	}
}

func TestSetsizeSmall(t *testing.T) {
	// 21 + 4**ceil(log(3k, 4)) for k > 5, by hand.
	for k, want := range map[int]int{0: 21, 5: 21, 6: 21 + 64, 21: 21 + 64, 22: 21 + 256, 85: 21 + 256, 86: 21 + 1024} {
		if got := setsize(k); got != want {
			t.Errorf("setsize(%d) = %d, want %d", k, got, want)
		}
	}
	if got := setsize(math.MaxInt); got != math.MaxInt {
		t.Errorf("setsize(MaxInt) = %d, want MaxInt", got)
	}
}

func TestZeroValue(t *testing.T) {
	var r Rand
	ref := New(0)
	if r.GetState() != ref.GetState() {
		t.Fatal("zero Rand's state differs from New(0)'s")
	}
	var z Rand
	for range 1000 {
		if z.Random() != ref.Random() {
			t.Fatal("zero Rand draws differently from New(0)")
		}
	}
}
