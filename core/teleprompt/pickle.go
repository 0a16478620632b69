package teleprompt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/big"
	"unicode/utf8"
)

// dspyTraceHash reproduces DSPy's Hasher.hash(tuple(demos)) for the demos
// one predictor's calls in one run give (dspy.Example(augmented=True,
// **inputs, **outputs) each): the SHA-256 hex digest of the tuple's pickle
// in pickle's default protocol up to Python 3.13, 4 (Python 3.14's default
// is 5, which DSPy on 3.14 would hash instead), naming the class
// dspy.primitives.example.Example as DSPy 3.4.1 does. A pickle writes an
// object met again as a reference to its first occurrence (its memo), and
// which values are the same Python object is not in the values; the
// identities are those of DSPy's Predict, which the golden cases confirm
// (TestDSPyTraceHash, and the several_calls cases of
// TestDSPyOptimizerParity):
//
//   - field names (and Example's attribute names) are interned: one object
//     per name;
//   - the empty string and one-character strings below U+0100 are CPython
//     singletons;
//   - an input value equal to an earlier input or output value of the run
//     is that object, passed on (the question given to every call of a
//     loop, one call's answer given to the next);
//   - every other string is an object of its own (two equal answers are
//     two parses).
//
// Field values must be strings, booleans, None, integers or floats; for
// anything else (lists, objects) it reports false, and the caller uses
// another seed.
func dspyTraceHash(demos []traceParts) (string, bool) {
	p := &pickler{frameStart: -1, keys: map[string]int{}, singles: map[string]int{}, values: map[string]int{}}
	for _, d := range demos {
		for _, f := range append(append([]kv{}, d.inputs...), d.outputs...) {
			if !pickleScalar(f.value) {
				return "", false
			}
		}
	}
	p.op(0x80, 4) // PROTO 4
	p.framing = true
	p.boundary() // save(tuple)
	if len(demos) > 3 {
		p.op('(') // MARK
	}
	for _, d := range demos {
		p.example(d)
	}
	switch len(demos) {
	case 1:
		p.op(0x85) // TUPLE1
	case 2:
		p.op(0x86) // TUPLE2
	case 3:
		p.op(0x87) // TUPLE3
	default:
		p.op('t') // TUPLE
	}
	p.memoize()
	p.op('.') // STOP
	p.commitFrame()
	sum := sha256.Sum256(p.out.Bytes())
	return hex.EncodeToString(sum[:]), true
}

// kv is one field of a demo.
type kv struct {
	key   string
	value any
}

// traceParts is one predictor call's demo, split as DSPy builds it.
type traceParts struct {
	inputs, outputs []kv
}

func pickleScalar(v any) bool {
	switch v := v.(type) {
	case nil, string, bool, int, int64, float64:
		return true
	case *big.Int:
		return v != nil
	}
	return false
}

// frameTarget is CPython's _FRAME_SIZE_TARGET; frames shorter than
// frameMin bytes get no FRAME header.
const (
	frameTarget = 64 * 1024
	frameMin    = 4
	frameHeader = 9
)

type pickler struct {
	out        bytes.Buffer
	framing    bool
	frameStart int // -1: no open frame
	memo       int
	// keys memoizes field and attribute names, singles the singleton
	// strings, values the memo index of each field value written so far.
	keys, singles, values map[string]int
	// class is the memo index of the Example class once hasClass.
	class    int
	hasClass bool
}

// write is _Pickler_Write: with framing on, it opens a frame first.
func (p *pickler) write(b ...byte) {
	if p.framing && p.frameStart < 0 {
		p.frameStart = p.out.Len()
		p.out.Write(make([]byte, frameHeader))
	}
	p.out.Write(b)
}

func (p *pickler) op(b ...byte) { p.write(b...) }

// commitFrame is _Pickler_CommitFrame.
func (p *pickler) commitFrame() {
	if p.frameStart < 0 {
		return
	}
	buf := p.out.Bytes()
	n := len(buf) - p.frameStart - frameHeader
	if n >= frameMin {
		buf[p.frameStart] = 0x95 // FRAME
		binary.LittleEndian.PutUint64(buf[p.frameStart+1:], uint64(n))
	} else {
		copy(buf[p.frameStart:], buf[p.frameStart+frameHeader:])
		p.out.Truncate(len(buf) - frameHeader)
	}
	p.frameStart = -1
}

// boundary ends the frame once it holds frameTarget bytes; the pickler
// checks at the start of saving each object (pickle.py's save calls
// framer.commit_frame first).
func (p *pickler) boundary() {
	if p.framing && p.frameStart >= 0 && p.out.Len()-p.frameStart-frameHeader >= frameTarget {
		p.commitFrame()
	}
}

func (p *pickler) memoize() int {
	p.op(0x94) // MEMOIZE
	p.memo++
	return p.memo - 1
}

func (p *pickler) get(i int) {
	if i < 256 {
		p.op('h', byte(i)) // BINGET
		return
	}
	var b [5]byte
	b[0] = 'j' // LONG_BINGET
	binary.LittleEndian.PutUint32(b[1:], uint32(i))
	p.op(b[:]...)
}

// str saves a new string object (save_unicode) and returns its memo index.
func (p *pickler) str(s string) int {
	p.boundary()
	n := len(s)
	var head []byte
	if n < 256 {
		head = []byte{0x8c, byte(n)} // SHORT_BINUNICODE
	} else {
		head = []byte{'X', 0, 0, 0, 0} // BINUNICODE
		binary.LittleEndian.PutUint32(head[1:], uint32(n))
	}
	if n >= frameTarget && p.framing { // _Pickler_write_bytes: large data unframed
		p.commitFrame()
		p.framing = false
		p.write(head...)
		p.write([]byte(s)...)
		p.framing = true
	} else {
		p.write(head...)
		p.write([]byte(s)...)
	}
	return p.memoize()
}

// single reports whether s is a CPython singleton string.
func single(s string) bool {
	if s == "" {
		return true
	}
	r, size := utf8.DecodeRuneInString(s)
	return size == len(s) && r < 0x100
}

// name writes an interned name.
func (p *pickler) name(s string) {
	if single(s) {
		p.shared(p.singles, s)
		return
	}
	p.shared(p.keys, s)
}

func (p *pickler) shared(m map[string]int, s string) {
	if i, ok := m[s]; ok {
		p.boundary()
		p.get(i)
		return
	}
	m[s] = p.str(s)
}

// value writes a field's value; input values may be objects seen before.
func (p *pickler) value(v any, input bool) {
	if _, ok := v.(string); !ok {
		p.boundary()
	}
	switch v := v.(type) {
	case nil:
		p.op('N')
	case bool:
		if v {
			p.op(0x88) // NEWTRUE
		} else {
			p.op(0x89) // NEWFALSE
		}
	case int:
		p.int(big.NewInt(int64(v)))
	case int64:
		p.int(big.NewInt(v))
	case *big.Int:
		p.int(v)
	case float64:
		var b [9]byte
		b[0] = 'G' // BINFLOAT
		binary.BigEndian.PutUint64(b[1:], math.Float64bits(v))
		p.op(b[:]...)
	case string:
		if single(v) {
			p.shared(p.singles, v)
			return
		}
		if i, ok := p.values[v]; ok && input {
			p.boundary()
			p.get(i)
			return
		}
		p.values[v] = p.str(v)
	}
}

// int is save_long.
func (p *pickler) int(x *big.Int) {
	if x.IsInt64() {
		n := x.Int64()
		switch {
		case n >= 0 && n < 256:
			p.op('K', byte(n)) // BININT1
			return
		case n >= 0 && n < 65536:
			p.op('M', byte(n), byte(n>>8)) // BININT2
			return
		case n >= math.MinInt32 && n <= math.MaxInt32:
			var b [5]byte
			b[0] = 'J' // BININT
			binary.LittleEndian.PutUint32(b[1:], uint32(int32(n)))
			p.op(b[:]...)
			return
		}
	}
	// LONG1/LONG4: little-endian two's complement, as short as the sign
	// allows.
	nbytes := x.BitLen()/8 + 1
	tc := new(big.Int).Set(x)
	if x.Sign() < 0 {
		tc.Add(tc, new(big.Int).Lsh(big.NewInt(1), uint(8*nbytes)))
	}
	be := tc.FillBytes(make([]byte, nbytes))
	if x.Sign() < 0 && nbytes > 1 && be[0] == 0xff && be[1]&0x80 != 0 {
		be = be[1:] // -2**(8k-1) needs no extra byte
	}
	le := make([]byte, len(be))
	for i, c := range be {
		le[len(be)-1-i] = c
	}
	if len(le) < 256 {
		p.op(append([]byte{0x8a, byte(len(le))}, le...)...) // LONG1
		return
	}
	head := []byte{0x8b, 0, 0, 0, 0} // LONG4
	binary.LittleEndian.PutUint32(head[1:], uint32(len(le)))
	p.op(append(head, le...)...)
}

// example writes one dspy.Example: the class, NEWOBJ, then its __dict__
// ({"_store": ..., "_demos": [], "_input_keys": None}) and BUILD.
func (p *pickler) example(d traceParts) {
	p.boundary() // save(example)
	if p.hasClass {
		p.boundary()
		p.get(p.class)
	} else {
		p.boundary() // save(cls): save_global saves its two names
		p.str("dspy.primitives.example")
		p.str("Example")
		p.op(0x93) // STACK_GLOBAL
		p.class = p.memoize()
		p.hasClass = true
	}
	p.boundary() // save(())
	p.op(')')    // EMPTY_TUPLE
	p.op(0x81)   // NEWOBJ
	p.memoize()
	p.boundary() // save(__dict__)
	p.op('}')    // EMPTY_DICT
	p.memoize()
	p.op('(') // MARK
	p.name("_store")
	p.boundary() // save(_store)
	p.op('}')
	p.memoize()
	items := 1 + len(d.inputs) + len(d.outputs)
	if items > 1 {
		p.op('(')
	}
	p.name("augmented")
	p.value(true, false)
	for _, f := range d.inputs {
		p.name(f.key)
		p.value(f.value, true)
	}
	for _, f := range d.outputs {
		p.name(f.key)
		p.value(f.value, false)
	}
	if items > 1 {
		p.op('u') // SETITEMS
	} else {
		p.op('s') // SETITEM
	}
	p.name("_demos")
	p.boundary() // save([])
	p.op(']')    // EMPTY_LIST
	p.memoize()
	p.name("_input_keys")
	p.boundary() // save(None)
	p.op('N')
	p.op('u')
	p.op('b') // BUILD
}
