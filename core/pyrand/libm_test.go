package pyrand

import (
	"math"
	"testing"
)

func ulps(a, b float64) int64 {
	d := int64(math.Float64bits(a)) - int64(math.Float64bits(b))
	if d < 0 {
		d = -d
	}
	return d
}

// crLog and crSinCos round correctly, so they stay within an ulp of Go's
// math (itself within an ulp or so) over the inputs random.gauss gives them;
// the golden Gaussian draws check them against CPython.
func TestDoubleDoubleLibm(t *testing.T) {
	r := New(99)
	for range 20000 {
		u := 1.0 - r.Random()
		if d := ulps(crLog(u), math.Log(u)); d > 1 {
			t.Fatalf("crLog(%v) = %v, math.Log = %v", u, crLog(u), math.Log(u))
		}
		x := r.Random() * twoPi
		s, c := crSinCos(x)
		if ulps(s, math.Sin(x)) > 2 && math.Abs(s-math.Sin(x)) > 0x1p-60 || ulps(c, math.Cos(x)) > 2 && math.Abs(c-math.Cos(x)) > 0x1p-60 {
			t.Fatalf("crSinCos(%v) = %v, %v; math gives %v, %v", x, s, c, math.Sin(x), math.Cos(x))
		}
	}
	for _, tc := range []struct{ x, sin, cos float64 }{
		{0, 0, 1},
		{math.Pi / 2, 1, 6.123233995736766e-17},
		{math.Pi, 1.2246467991473532e-16, -1},
		{3 * math.Pi / 2, -1, -1.8369701987210297e-16},
	} {
		if s, c := crSinCos(tc.x); s != tc.sin || c != tc.cos {
			t.Errorf("crSinCos(%v) = %v, %v; want %v, %v", tc.x, s, c, tc.sin, tc.cos)
		}
	}
	if crLog(1) != 0 || crLog(2) != math.Ln2 || crLog(0x1p-53) != -53*math.Ln2 {
		t.Errorf("crLog(1), crLog(2), crLog(2^-53) = %v, %v, %v", crLog(1), crLog(2), crLog(0x1p-53))
	}
}
