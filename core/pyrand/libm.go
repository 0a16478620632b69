package pyrand

import "math"

// random.gauss and random.normalvariate call the C library's log, cos and
// sin, which glibc rounds correctly in all but vanishingly rare cases; Go's
// math.Cos, math.Sin and math.Log are off by an ulp for a good share of
// inputs. So the three are computed here in double-double arithmetic (about
// 104 bits) and rounded once, which gives the correctly rounded double, and
// so glibc's, except where the exact value lies within about 2^-100 of a
// rounding boundary.

// dd is an unevaluated sum hi+lo with |lo| ≤ ulp(hi)/2.
//
// Every product below is converted to float64 explicitly: that stops the
// compiler fusing it with an addition (as it does on arm64, or on amd64 with
// GOAMD64=v3), which would break the error-free transformations twoSum and
// quickTwoSum rely on once they are inlined.
type dd struct{ hi, lo float64 }

func twoSum(a, b float64) (s, e float64) {
	s = a + b
	bb := s - a
	e = (a - (s - bb)) + (b - bb)
	return s, e
}

func quickTwoSum(a, b float64) dd {
	s := a + b
	return dd{s, b - (s - a)}
}

func twoProd(a, b float64) (p, e float64) {
	p = float64(a * b)
	return p, math.FMA(a, b, -p)
}

func (a dd) add(b dd) dd {
	s1, s2 := twoSum(a.hi, b.hi)
	t1, t2 := twoSum(a.lo, b.lo)
	s2 += t1
	r := quickTwoSum(s1, s2)
	return quickTwoSum(r.hi, r.lo+t2)
}

func (a dd) neg() dd { return dd{-a.hi, -a.lo} }

func (a dd) mul(b dd) dd {
	p, e := twoProd(a.hi, b.hi)
	e += float64(a.hi*b.lo) + float64(a.lo*b.hi)
	return quickTwoSum(p, e)
}

func (a dd) mulFloat(b float64) dd {
	p, e := twoProd(a.hi, b)
	e += float64(a.lo * b)
	return quickTwoSum(p, e)
}

func (a dd) div(b dd) dd {
	q1 := a.hi / b.hi
	r := a.add(b.mulFloat(q1).neg())
	q2 := r.hi / b.hi
	r = r.add(b.mulFloat(q2).neg())
	q3 := r.hi / b.hi
	return quickTwoSum(q1, q2).add(dd{q3, 0})
}

var (
	ddLn2   = dd{0x1.62e42fefa39efp-1, 0x1.abc9e3b39803fp-56}
	ddPio2  = [3]float64{0x1.921fb54442d18p+0, 0x1.1a62633145c07p-54, -0x1.f1976b7ed8fbcp-110}
	ddOne   = dd{1, 0}
	atanhK  = oddReciprocals(24)    // 1/(2j+1): log's series in s² with |s| < 0.172
	invFact = inverseFactorials(32) // 1/n!: sin and cos series with |r| ≤ π/4
)

func oddReciprocals(n int) []dd {
	out := make([]dd, n)
	for j := range out {
		out[j] = ddOne.div(dd{float64(2*j + 1), 0})
	}
	return out
}

func inverseFactorials(n int) []dd {
	out := make([]dd, n)
	out[0] = ddOne
	for i := 1; i < n; i++ {
		out[i] = out[i-1].div(dd{float64(i), 0})
	}
	return out
}

// crLog is log(x) for finite x > 0, correctly rounded (see above).
func crLog(x float64) float64 {
	if x == 1 {
		return 0
	}
	if !(x > 0) || math.IsInf(x, 1) {
		return math.Log(x)
	}
	m, e := math.Frexp(x) // x = m·2^e, m in [0.5, 1)
	if m < math.Sqrt2/2 {
		m *= 2
		e--
	}
	// log m = 2·atanh(s) = 2(s + s³/3 + s⁵/5 + …), s = (m-1)/(m+1).
	s := dd{m - 1, 0}.div(quickTwoSum(twoSum(m, 1)))
	s2 := s.mul(s)
	sum := atanhK[len(atanhK)-1]
	for j := len(atanhK) - 2; j >= 0; j-- {
		sum = sum.mul(s2).add(atanhK[j])
	}
	logm := s.mul(sum).mulFloat(2)
	return ddLn2.mulFloat(float64(e)).add(logm).hi
}

// crSinCos is (sin x, cos x), each correctly rounded (see above), for
// 0 ≤ |x| ≤ 2π; random.gauss only asks for x in [0, 2π).
func crSinCos(x float64) (sin, cos float64) {
	if x == 0 || math.Abs(x) > 8 || math.IsNaN(x) {
		return math.Sin(x), math.Cos(x)
	}
	k := math.Round(x / ddPio2[0])
	// r = x - k·π/2 with π/2 to about 160 bits; the first step is exact.
	p, e := twoProd(k, ddPio2[0])
	r := dd{x, 0}.add(dd{-p, -e})
	p, e = twoProd(k, ddPio2[1])
	r = r.add(dd{-p, -e}).add(dd{float64(-k * ddPio2[2]), 0})
	r2 := r.mul(r)
	// sin r = r·Σ (-r²)^j/(2j+1)!, cos r = Σ (-r²)^j/(2j)!.
	n := len(invFact) / 2
	ss, cs := invFact[2*n-1], invFact[2*n-2]
	if n%2 == 0 {
		ss, cs = ss.neg(), cs.neg()
	}
	for j := n - 2; j >= 0; j-- {
		sc, cc := invFact[2*j+1], invFact[2*j]
		if j%2 == 1 {
			sc, cc = sc.neg(), cc.neg()
		}
		ss = ss.mul(r2).add(sc)
		cs = cs.mul(r2).add(cc)
	}
	sr, cr := r.mul(ss), cs
	switch int(k) & 3 {
	case 0:
		return sr.hi, cr.hi
	case 1:
		return cr.hi, -sr.hi
	case 2:
		return -sr.hi, -cr.hi
	default:
		return -cr.hi, sr.hi
	}
}
