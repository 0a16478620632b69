package pyrand

// MT19937 as in CPython's Modules/_randommodule.c (after Matsumoto and
// Nishimura's reference mt19937ar.c).

const (
	mtN         = 624
	mtM         = 397
	matrixA     = 0x9908b0df
	upperMask   = 0x80000000
	lowerMask   = 0x7fffffff
	initGenrand = 19650218
)

// mt is the generator's state: 624 words and how many of them are left to
// temper before the next regeneration (CPython keeps index = 624 - left).
// Counting down makes the zero value one that seeds itself as
// random.Random(0) on first use.
type mt struct {
	state  [mtN]uint32
	left   int
	seeded bool
}

func (m *mt) initGenrand(s uint32) {
	m.state[0] = s
	for i := 1; i < mtN; i++ {
		prev := m.state[i-1]
		m.state[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	m.left = 0
	m.seeded = true
}

// initByArray seeds from key, which must hold at least one word.
func (m *mt) initByArray(key []uint32) {
	m.initGenrand(initGenrand)
	s := &m.state
	i, j := 1, 0
	k := max(mtN, len(key))
	for ; k > 0; k-- {
		prev := s[i-1]
		s[i] = (s[i] ^ ((prev ^ (prev >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= mtN {
			s[0] = s[mtN-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k = mtN - 1; k > 0; k-- {
		prev := s[i-1]
		s[i] = (s[i] ^ ((prev ^ (prev >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= mtN {
			s[0] = s[mtN-1]
			i = 1
		}
	}
	s[0] = 0x80000000 // MSB is 1, assuring a non-zero initial array
}

// uint32 is CPython's genrand_uint32.
func (m *mt) uint32() uint32 {
	if m.left <= 0 {
		if !m.seeded {
			m.initByArray([]uint32{0})
		}
		m.regenerate()
	}
	y := m.state[mtN-m.left]
	m.left--
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

func (m *mt) regenerate() {
	s := &m.state
	var kk int
	for ; kk < mtN-mtM; kk++ {
		y := (s[kk] & upperMask) | (s[kk+1] & lowerMask)
		s[kk] = s[kk+mtM] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	}
	for ; kk < mtN-1; kk++ {
		y := (s[kk] & upperMask) | (s[kk+1] & lowerMask)
		s[kk] = s[kk+(mtM-mtN)] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	}
	y := (s[mtN-1] & upperMask) | (s[0] & lowerMask)
	s[mtN-1] = s[mtM-1] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	m.left = mtN
}
