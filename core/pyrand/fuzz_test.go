package pyrand

import (
	"math"
	"testing"
)

// FuzzSample: for any seed and valid n, k, Sample returns k distinct indices
// below n, its generic form picks the same elements, and invalid k fails.
func FuzzSample(f *testing.F) {
	for _, c := range [][3]int64{{0, 10, 3}, {1, 21, 5}, {2, 22, 5}, {3, 1000, 0}, {4, 0, 0}, {5, 1 << 40, 30}, {6, 3, 4}, {7, 5, -1}} {
		f.Add(c[0], c[1], c[2])
	}
	f.Fuzz(func(t *testing.T, seed, n, k int64) {
		// Bound k (the result's length) and n where the pool strategy lists it.
		if k > 4096 || n < 0 || n > 1<<50 || int64(int(n)) != n || int64(int(k)) != k {
			t.Skip()
		}
		r := New(seed)
		idx, err := r.Sample(int(n), int(k))
		if k < 0 || k > n {
			if err == nil {
				t.Fatalf("Sample(%d, %d) = %v, want an error", n, k, idx)
			}
			return
		}
		if err != nil {
			t.Fatalf("Sample(%d, %d): %v", n, k, err)
		}
		if int64(len(idx)) != k {
			t.Fatalf("Sample(%d, %d) has %d indices", n, k, len(idx))
		}
		seen := make(map[int]bool, len(idx))
		for _, i := range idx {
			if i < 0 || int64(i) >= n || seen[i] {
				t.Fatalf("Sample(%d, %d) = %v: index %d out of range or repeated", n, k, idx, i)
			}
			seen[i] = true
		}
		if n <= 10000 {
			pop := make([]int, n)
			for i := range pop {
				pop[i] = -i
			}
			got, err := Sample(New(seed), pop, int(k))
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i] != -idx[i] {
					t.Fatalf("Sample[T] picked %v, indices %v", got, idx)
				}
			}
		}
	})
}

// FuzzRandrange: a result lies in range(start, stop, step), and an error
// comes exactly where that range is empty or step is 0.
func FuzzRandrange(f *testing.F) {
	for _, c := range [][4]int64{{0, 0, 10, 1}, {1, 10, 0, -3}, {2, math.MinInt64, math.MaxInt64, 1}, {3, math.MaxInt64, math.MinInt64, math.MinInt64}, {4, 0, 10, 0}, {5, 5, 5, 1}} {
		f.Add(c[0], c[1], c[2], c[3])
	}
	f.Fuzz(func(t *testing.T, seed, start, stop, step int64) {
		if int64(int(start)) != start || int64(int(stop)) != stop || int64(int(step)) != step {
			t.Skip() // a 32-bit int
		}
		r := New(seed)
		v, err := r.Randrange(int(start), int(stop), int(step))
		empty := step == 0 || (step > 0 && stop <= start) || (step < 0 && stop >= start)
		if empty != (err != nil) {
			t.Fatalf("Randrange(%d, %d, %d) = %d, %v", start, stop, step, v, err)
		}
		if err != nil {
			return
		}
		x := int64(v)
		if step > 0 && (x < start || x >= stop) || step < 0 && (x > start || x <= stop) {
			t.Fatalf("Randrange(%d, %d, %d) = %d, outside the range", start, stop, step, x)
		}
		// |x - start| is a multiple of |step|.
		d := uint64(x) - uint64(start)
		if step < 0 {
			d = uint64(start) - uint64(x)
		}
		if d%absU(step) != 0 {
			t.Fatalf("Randrange(%d, %d, %d) = %d, off the step", start, stop, step, x)
		}
	})
}

func absU(v int64) uint64 {
	if v < 0 {
		return -uint64(v)
	}
	return uint64(v)
}
