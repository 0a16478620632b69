package pyrand

import (
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
)

// Errors the methods return, each for the case where CPython raises. They are
// wrapped with the arguments at fault; test with errors.Is.
var (
	// ErrEmptyRange: randrange or randint over an empty range (ValueError).
	ErrEmptyRange = errors.New("pyrand: empty range for randrange()")
	// ErrZeroStep: randrange with step 0 (ValueError).
	ErrZeroStep = errors.New("pyrand: zero step for randrange()")
	// ErrEmptySequence: a choice from an empty sequence (IndexError).
	ErrEmptySequence = errors.New("pyrand: cannot choose from an empty sequence")
	// ErrSampleSize: a sample larger than its population, or negative (ValueError).
	ErrSampleSize = errors.New("pyrand: sample larger than population or is negative")
	// ErrNegativeBits: getrandbits or randbytes with a negative count (ValueError).
	ErrNegativeBits = errors.New("pyrand: number of bits must be non-negative")
	// ErrTooManyBits: Getrandbits of more than 64 bits; GetrandbitsBig takes any count.
	ErrTooManyBits = errors.New("pyrand: more than 64 bits do not fit in a uint64")
	// ErrWeights: choices weights of the wrong length, with a total that is
	// not positive, or not finite (ValueError).
	ErrWeights = errors.New("pyrand: invalid weights")
	// ErrInvalidState: SetState with an index outside [0, 624] (ValueError).
	ErrInvalidState = errors.New("pyrand: invalid state")
)

// Rand is a random.Random: CPython's Mersenne Twister plus the state of
// random.gauss. Create one with New, NewBig or NewBytes; the zero value is
// ready to use and draws as New(0).
//
// A Rand is not safe for concurrent use.
type Rand struct {
	mt           mt
	gaussNext    float64
	hasGaussNext bool
}

// New returns a generator seeded as random.Random(seed).
func New(seed int64) *Rand {
	r := &Rand{}
	r.Seed(seed)
	return r
}

// NewBig returns a generator seeded as random.Random(seed), for seeds of any
// size. A nil seed is 0.
func NewBig(seed *big.Int) *Rand {
	r := &Rand{}
	r.SeedBig(seed)
	return r
}

// NewBytes returns a generator seeded as random.Random(b) for a bytes seed,
// and so as random.Random(s) for a str seed s when b is s encoded in UTF-8
// (what Python's seed encodes it to).
func NewBytes(b []byte) *Rand {
	r := &Rand{}
	r.SeedBytes(b)
	return r
}

// Seed reseeds r as random.Random.seed(seed) does: by the 32-bit words of
// |seed|, so seed and -seed give the same sequence.
func (r *Rand) Seed(seed int64) {
	u := uint64(seed)
	if seed < 0 {
		u = -u // |MinInt64| = 2^63 fits a uint64
	}
	if u>>32 == 0 {
		r.seedKey([]uint32{uint32(u)})
		return
	}
	r.seedKey([]uint32{uint32(u), uint32(u >> 32)})
}

// SeedBig reseeds r as random.Random.seed(seed) does for an int of any size.
// A nil seed is 0.
func (r *Rand) SeedBig(seed *big.Int) {
	if seed == nil || seed.Sign() == 0 {
		r.seedKey([]uint32{0})
		return
	}
	abs := new(big.Int).Abs(seed)
	words := (abs.BitLen()-1)/32 + 1
	be := abs.FillBytes(make([]byte, 4*words))
	key := make([]uint32, words)
	for i := range key {
		// Word i (little-endian order) is the i-th 4-byte group from the end.
		o := len(be) - 4*(i+1)
		key[i] = uint32(be[o])<<24 | uint32(be[o+1])<<16 | uint32(be[o+2])<<8 | uint32(be[o+3])
	}
	r.seedKey(key)
}

// SeedBytes reseeds r as random.Random.seed(b) does for a bytes seed
// (version 2): the seed is the big-endian integer of b followed by its
// SHA-512 digest.
func (r *Rand) SeedBytes(b []byte) {
	sum := sha512.Sum512(b)
	buf := append(append(make([]byte, 0, len(b)+len(sum)), b...), sum[:]...)
	r.SeedBig(new(big.Int).SetBytes(buf))
}

func (r *Rand) seedKey(key []uint32) {
	r.mt.initByArray(key)
	r.hasGaussNext = false
	r.gaussNext = 0
}

// Random returns the next float64 in [0, 1), as random.random(): 53 bits from
// two 32-bit words.
func (r *Rand) Random() float64 {
	a := r.mt.uint32() >> 5
	b := r.mt.uint32() >> 6
	// a*2^26+b < 2^53 is exact, so fused or not the result is the same.
	return (float64(a)*67108864.0 + float64(b)) * (1.0 / 9007199254740992.0)
}

// Getrandbits returns random.getrandbits(k) for 0 ≤ k ≤ 64. It fails with
// ErrNegativeBits for k < 0 and ErrTooManyBits for k > 64, consuming nothing.
func (r *Rand) Getrandbits(k int) (uint64, error) {
	switch {
	case k < 0:
		return 0, fmt.Errorf("getrandbits(%d): %w", k, ErrNegativeBits)
	case k > 64:
		return 0, fmt.Errorf("getrandbits(%d): %w", k, ErrTooManyBits)
	}
	return r.bits(k), nil
}

// bits is getrandbits for 0 ≤ k ≤ 64: 32-bit words fill the result from the
// low end, and the last word keeps only its top bits.
func (r *Rand) bits(k int) uint64 {
	switch {
	case k == 0:
		return 0
	case k <= 32:
		return uint64(r.mt.uint32() >> (32 - k))
	}
	lo := uint64(r.mt.uint32())
	hi := uint64(r.mt.uint32() >> (64 - k))
	return hi<<32 | lo
}

// GetrandbitsBig returns random.getrandbits(k) for any k ≥ 0. It fails with
// ErrNegativeBits for k < 0, consuming nothing.
func (r *Rand) GetrandbitsBig(k int) (*big.Int, error) {
	if k < 0 {
		return nil, fmt.Errorf("getrandbits(%d): %w", k, ErrNegativeBits)
	}
	if k <= 64 {
		return new(big.Int).SetUint64(r.bits(k)), nil
	}
	return new(big.Int).SetBytes(reverse(r.wordBytes(k))), nil
}

// Randbytes returns random.randbytes(n): getrandbits(8*n) as n little-endian
// bytes. It fails with ErrNegativeBits for n < 0, consuming nothing.
func (r *Rand) Randbytes(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("randbytes(%d): %w", n, ErrNegativeBits)
	}
	return r.wordBytes(8 * n)[:n], nil
}

// wordBytes draws getrandbits(k) as little-endian bytes, whole words.
func (r *Rand) wordBytes(k int) []byte {
	words := (k + 31) / 32
	out := make([]byte, 4*words)
	for i := 0; i < words; i, k = i+1, k-32 {
		w := r.mt.uint32()
		if k < 32 {
			w >>= 32 - k
		}
		out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	}
	return out
}

func reverse(b []byte) []byte {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return b
}

// State is what random.Random.getstate() returns (version 3): the 624 words
// and the index of the Mersenne Twister, and gauss's saved second value.
type State struct {
	// Words are the twister's 624 words (getstate()[1][:624]).
	Words [mtN]uint32
	// Index is the next word's index, 0 to 624 (getstate()[1][624]).
	Index int
	// HasGaussNext is false where getstate()[2] is None.
	HasGaussNext bool
	// GaussNext is getstate()[2] where HasGaussNext.
	GaussNext float64
}

// GetState returns a copy of r's state, as random.getstate().
func (r *Rand) GetState() State {
	if !r.mt.seeded {
		r.mt.initByArray([]uint32{0})
	}
	return State{Words: r.mt.state, Index: mtN - r.mt.left, HasGaussNext: r.hasGaussNext, GaussNext: r.gaussNext}
}

// SetState restores a state from GetState or from Python's getstate(), as
// random.setstate(). It fails with ErrInvalidState, changing nothing, where
// the index is outside [0, 624].
func (r *Rand) SetState(s State) error {
	if s.Index < 0 || s.Index > mtN {
		return fmt.Errorf("%w: index %d outside [0, %d]", ErrInvalidState, s.Index, mtN)
	}
	r.mt.state = s.Words
	r.mt.left = mtN - s.Index
	r.mt.seeded = true
	r.hasGaussNext = s.HasGaussNext
	r.gaussNext = s.GaussNext
	if !s.HasGaussNext {
		r.gaussNext = 0
	}
	return nil
}
