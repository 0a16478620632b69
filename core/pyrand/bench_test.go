package pyrand

import "testing"

func BenchmarkRandom(b *testing.B) {
	r := New(1)
	var sink float64
	for b.Loop() {
		sink += r.Random()
	}
	_ = sink
}

func BenchmarkRandint(b *testing.B) {
	r := New(1)
	for b.Loop() {
		_, _ = r.Randint(1, 1000)
	}
}

func BenchmarkSample(b *testing.B) {
	for _, bc := range []struct {
		name string
		n, k int
	}{
		{"pool/n=50,k=20", 50, 20},
		{"set/n=10000,k=20", 10000, 20},
		{"pool/n=1000,k=500", 1000, 500},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := New(1)
			for b.Loop() {
				if _, err := r.Sample(bc.n, bc.k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkShuffle(b *testing.B) {
	r := New(1)
	x := make([]int, 100)
	for b.Loop() {
		Shuffle(r, x)
	}
}

func BenchmarkGauss(b *testing.B) {
	r := New(1)
	var sink float64
	for b.Loop() {
		sink += r.Gauss(0, 1)
	}
	_ = sink
}
