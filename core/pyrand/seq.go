package pyrand

import (
	"fmt"
	"math"
	"math/bits"
)

// Shuffle shuffles a sequence of length n in place as random.shuffle does,
// calling swap(i, j) for i from n-1 down to 1 with j = randbelow(i+1) (j may
// equal i, as in Python).
func (r *Rand) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i >= 1; i-- {
		swap(i, int(r.below(uint64(i+1))))
	}
}

// Shuffle shuffles x in place as random.shuffle(x) does.
func Shuffle[T any](r *Rand, x []T) {
	r.Shuffle(len(x), func(i, j int) { x[i], x[j] = x[j], x[i] })
}

// Sample returns the indices random.sample picks from a population of n,
// in selection order: Sample(n, k) is random.sample(range(n), k), and
// population[i] for each returned i is random.sample(population, k). Both of
// CPython's strategies are reproduced: a pool list where n is at most
// setsize(k), a set of picks (redrawing repeats) otherwise. It fails with
// ErrSampleSize unless 0 ≤ k ≤ n, consuming nothing.
//
// As in Python, the memory used is about min(n, 4·3k) for the pool and k for
// the picks.
func (r *Rand) Sample(n, k int) ([]int, error) {
	if k < 0 || k > n {
		return nil, fmt.Errorf("sample of %d from %d: %w", k, n, ErrSampleSize)
	}
	result := make([]int, k)
	if n <= setsize(k) {
		// Invariant: the elements not yet picked are pool[:n-i].
		pool := make([]int, n)
		for i := range pool {
			pool[i] = i
		}
		for i := range k {
			j := r.below(uint64(n - i))
			result[i] = pool[j]
			pool[j] = pool[n-i-1]
		}
		return result, nil
	}
	selected := make(map[int]struct{}, k)
	for i := range k {
		j := int(r.below(uint64(n)))
		for isSelected(selected, j) {
			j = int(r.below(uint64(n)))
		}
		selected[j] = struct{}{}
		result[i] = j
	}
	return result, nil
}

func isSelected(set map[int]struct{}, j int) bool {
	_, ok := set[j]
	return ok
}

// Sample returns random.sample(population, k): k distinct positions of
// population, in selection order. It fails with ErrSampleSize unless
// 0 ≤ k ≤ len(population), consuming nothing.
func Sample[T any](r *Rand, population []T, k int) ([]T, error) {
	idx, err := r.Sample(len(population), k)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = population[j]
	}
	return out, nil
}

// setsize is random.sample's threshold: 21, plus 4**ceil(log(3k, 4)) where
// k > 5, with the logarithm taken in floating point as CPython takes it (for
// k below 2^40 this is exactly the smallest power of 4 at least 3k; above, the
// rounding of float(3k) can pick the power below, and so it does here). Where
// the power would overflow an int the result is math.MaxInt, which keeps
// Python's choice of the pool strategy for every n.
func setsize(k int) int {
	const small = 21
	if k <= 5 {
		return small
	}
	// Converting an integer to float64 rounds to nearest even, as Python's
	// float(int) does. Past 6e18, 3k overflows a uint64 and is rounded twice.
	var x float64
	if uint64(k) <= math.MaxUint64/3 {
		x = float64(uint64(k) * 3)
	} else {
		x = float64(k) * 3
	}
	m := int(math.Ceil(math.Log(x) / math.Log(4)))
	if 2*m > bits.UintSize-2 { // 21 + 4^m > MaxInt
		return math.MaxInt
	}
	return small + 1<<(2*m)
}

// Choices returns the indices random.choices picks, with replacement, from a
// population of n: Choices(n, k, nil) is random.choices(range(n), k=k) and
// Choices(n, k, w) is random.choices(range(n), weights=w, k=k). A k ≤ 0
// gives an empty result, as in Python.
//
// The weights are accumulated in float64 in order, so they match Python's for
// float weights and for int weights whose running sums stay below 2^53. It
// fails with ErrWeights where len(weights) ≠ n or the total is not positive
// and finite, and with ErrEmptySequence where n is 0 and k > 0 (which, as in
// Python, happens after one draw).
func (r *Rand) Choices(n, k int, weights []float64) ([]int, error) {
	if weights == nil {
		if k <= 0 {
			return []int{}, nil
		}
		nf := float64(n)
		out := make([]int, k)
		for i := range out {
			j := int(math.Floor(r.Random() * nf))
			if j >= n { // n = 0, or a product rounded up to n (n > 2^53)
				return nil, fmt.Errorf("choices index %d of %d elements: %w", j, n, ErrEmptySequence)
			}
			out[i] = j
		}
		return out, nil
	}
	if len(weights) != n {
		return nil, fmt.Errorf("%w: the number of weights (%d) does not match the population (%d)", ErrWeights, len(weights), n)
	}
	if n == 0 {
		return nil, fmt.Errorf("choices with no weights: %w", ErrEmptySequence)
	}
	cum := make([]float64, n)
	var sum float64
	for i, w := range weights {
		sum += w
		cum[i] = sum
	}
	total := cum[n-1]
	if total <= 0 {
		return nil, fmt.Errorf("%w: total of weights must be greater than zero, got %v", ErrWeights, total)
	}
	if math.IsInf(total, 0) || math.IsNaN(total) {
		return nil, fmt.Errorf("%w: total of weights must be finite, got %v", ErrWeights, total)
	}
	out := make([]int, max(k, 0))
	for i := range out {
		out[i] = bisectRight(cum, r.Random()*total, n-1)
	}
	return out, nil
}

// bisectRight is bisect.bisect(a, x, 0, hi).
func bisectRight(a []float64, x float64, hi int) int {
	lo := 0
	for lo < hi {
		mid := (lo + hi) / 2
		if x < a[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
