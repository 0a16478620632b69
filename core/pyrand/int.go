package pyrand

import (
	"fmt"
	"math/big"
	"math/bits"
)

// below is random._randbelow_with_getrandbits: getrandbits(n.bit_length())
// until the draw is below n. n must be positive.
func (r *Rand) below(n uint64) uint64 {
	k := bits.Len64(n)
	v := r.bits(k)
	for v >= n {
		v = r.bits(k)
	}
	return v
}

// below2to64 is below(2^64), which needs getrandbits(65): two whole words and
// the top bit of a third, which must be 0.
func (r *Rand) below2to64() uint64 {
	for {
		lo := uint64(r.mt.uint32())
		hi := uint64(r.mt.uint32())
		if r.mt.uint32()>>31 == 0 {
			return hi<<32 | lo
		}
	}
}

// Randrange returns random.randrange(start, stop, step): a random element of
// range(start, stop, step). random.randrange(stop) is Randrange(0, stop, 1)
// (the same draws; only Python's error text differs).
//
// It fails with ErrZeroStep for step 0 and ErrEmptyRange for an empty range,
// consuming nothing.
func (r *Rand) Randrange(start, stop, step int) (int, error) {
	v, err := r.randrange(int64(start), int64(stop), int64(step))
	return int(v), err
}

// randrange computes in uint64 where Python's ints would pass int64: widths
// up to 2^64-1 are exact there, and start+step*i wraps back into int64
// because the true result lies in [start, stop).
func (r *Rand) randrange(start, stop, step int64) (int64, error) {
	if step == 1 {
		if stop > start {
			return int64(uint64(start) + r.below(uint64(stop)-uint64(start))), nil
		}
		width := new(big.Int).Sub(big.NewInt(stop), big.NewInt(start))
		return 0, fmt.Errorf("%w (%d, %d, %d)", ErrEmptyRange, start, stop, width)
	}
	var n, ustep uint64
	switch {
	case step > 0:
		if stop <= start {
			return 0, fmt.Errorf("randrange(%d, %d, %d): %w", start, stop, step, ErrEmptyRange)
		}
		ustep = uint64(step)
		n = (uint64(stop)-uint64(start)-1)/ustep + 1
	case step < 0:
		if stop >= start {
			return 0, fmt.Errorf("randrange(%d, %d, %d): %w", start, stop, step, ErrEmptyRange)
		}
		ustep = -uint64(step) // |step|, MinInt64 included
		n = (uint64(start)-uint64(stop)-1)/ustep + 1
	default:
		return 0, fmt.Errorf("randrange(%d, %d, %d): %w", start, stop, step, ErrZeroStep)
	}
	return int64(uint64(start) + uint64(step)*r.below(n)), nil
}

// Randint returns random.randint(a, b): a random integer in [a, b], both
// ends included. It fails with ErrEmptyRange where b < a, consuming nothing.
func (r *Rand) Randint(a, b int) (int, error) {
	a64, b64 := int64(a), int64(b)
	if b64 < a64 {
		stop := new(big.Int).Add(big.NewInt(b64), big.NewInt(1))
		width := new(big.Int).Sub(stop, big.NewInt(a64))
		return 0, fmt.Errorf("%w (%d, %d, %d)", ErrEmptyRange, a64, stop, width)
	}
	width := uint64(b64) - uint64(a64) + 1
	if width == 0 { // [MinInt64, MaxInt64]: 2^64 values
		return int(int64(uint64(a64) + r.below2to64())), nil
	}
	return int(int64(uint64(a64) + r.below(width))), nil
}

// Choice returns the index random.choice picks from a sequence of length n:
// seq[Choice(len(seq))] is random.choice(seq). It fails with
// ErrEmptySequence where n ≤ 0, consuming nothing.
func (r *Rand) Choice(n int) (int, error) {
	if n <= 0 {
		return 0, fmt.Errorf("choice from %d elements: %w", n, ErrEmptySequence)
	}
	return int(r.below(uint64(n))), nil
}

// Choice returns random.choice(seq). It fails with ErrEmptySequence for an
// empty seq, consuming nothing.
func Choice[T any](r *Rand, seq []T) (T, error) {
	i, err := r.Choice(len(seq))
	if err != nil {
		var zero T
		return zero, err
	}
	return seq[i], nil
}
