// Package pyrand reproduces CPython 3.11's random.Random exactly, so that Go
// code drawing "random" choices from a seed makes the same choices DSPy makes
// with random.Random(seed): the same demos sampled, the same shuffles, the
// same candidates picked.
//
// A [Rand] is the Mersenne Twister MT19937 of CPython's _random module, seeded
// the way random.Random.seed seeds it (an int seed by the 32-bit words of its
// absolute value, so -3 and 3 give the same sequence; a str or bytes seed
// through SHA-512, version 2), with the Python-level methods of Lib/random.py
// computed as CPython computes them:
//
//	Python                                Go
//	random.Random(seed)                   New(seed), NewBig(seed), NewBytes(b)
//	r.seed(a)                             Seed, SeedBig, SeedBytes
//	r.random()                            Random
//	r.getrandbits(k)                      Getrandbits (k ≤ 64), GetrandbitsBig
//	r.randbytes(n)                        Randbytes
//	r.randrange(start, stop, step)        Randrange (randrange(stop) is Randrange(0, stop, 1))
//	r.randint(a, b)                       Randint
//	r.choice(seq)                         Choice (an index), Choice[T] (an element)
//	r.shuffle(x)                          Shuffle (with a swap func), Shuffle[T]
//	r.sample(population, k)               Sample (indices), Sample[T] (elements)
//	r.choices(population, weights, k=k)   Choices (indices)
//	r.uniform(a, b)                       Uniform
//	r.gauss(mu, sigma)                    Gauss
//	r.normalvariate(mu, sigma)            NormalVariate
//	r.getstate() / r.setstate(s)          GetState / SetState
//
// Every call consumes exactly the 32-bit words CPython's call consumes, and a
// call that fails (an empty range, a sample larger than its population)
// consumes none, as in CPython (the one exception is CPython's too: choices
// from an empty population draws once before it fails); so any interleaving
// of calls stays in step with Python. Integer results are identical, and so
// are the floats of Random, Uniform and Choices, bit for bit. Gauss and
// NormalVariate also need log, sin and cos: pyrand computes them correctly
// rounded (Go's math package is an ulp off for a quarter of the inputs),
// and glibc, which CPython calls, is itself an ulp off correct rounding in
// about one call in a thousand; so about one Gaussian draw in a thousand
// differs from CPython's in its last bit. The words consumed stay the same.
//
// The golden test replays scripts of calls recorded from CPython 3.11 by
// testdata/golden/pyrand/gen_pyrand_golden.py and compares every result.
//
// Not reproduced: seeding from None (the OS entropy source), float seeds,
// version-1 string seeds, the counts argument of sample and the other
// distributions (expovariate, gammavariate, ...). Python's arbitrary-size
// integers are Go ints here, except in seeds (NewBig, SeedBig) and
// GetrandbitsBig.
//
// MT19937 is predictable from its output: never use pyrand for cryptography
// or anything an adversary must not guess. A Rand is not safe for concurrent
// use (like math/rand.Rand): give each goroutine its own, or guard it.
package pyrand
