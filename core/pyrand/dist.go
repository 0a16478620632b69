package pyrand

import "math"

const (
	twoPi        = 6.283185307179586  // math.tau
	nvMagicConst = 1.7155277699214135 // random.NV_MAGICCONST, 4*exp(-0.5)/sqrt(2.0)
)

// The float64 conversions below stop the compiler fusing x*y+z into one
// fused multiply-add, which rounds once where CPython rounds twice.

// Uniform returns random.uniform(a, b): a + (b-a)*random().
func (r *Rand) Uniform(a, b float64) float64 {
	return a + float64((b-a)*r.Random())
}

// Gauss returns random.gauss(mu, sigma): Box-Muller, which draws two values
// at a time and keeps the second for the next call (Seed and SetState
// forget or restore it, as in Python).
func (r *Rand) Gauss(mu, sigma float64) float64 {
	z, ok := r.gaussNext, r.hasGaussNext
	r.gaussNext, r.hasGaussNext = 0, false
	if !ok {
		x2pi := r.Random() * twoPi
		g2rad := math.Sqrt(-2.0 * crLog(1.0-r.Random()))
		sin, cos := crSinCos(x2pi)
		z = cos * g2rad
		r.gaussNext, r.hasGaussNext = sin*g2rad, true
	}
	return mu + float64(z*sigma)
}

// NormalVariate returns random.normalvariate(mu, sigma): Kinderman and
// Monahan's ratio of uniforms.
func (r *Rand) NormalVariate(mu, sigma float64) float64 {
	var z float64
	for {
		u1 := r.Random()
		u2 := 1.0 - r.Random()
		z = nvMagicConst * (u1 - 0.5) / u2
		zz := z * z / 4.0
		if zz <= -crLog(u2) {
			break
		}
	}
	return mu + float64(z*sigma)
}
