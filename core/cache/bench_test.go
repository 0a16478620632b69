package cache

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// benchValue is the size of a typical cached LM response.
var benchValue = bytes.Repeat([]byte("x"), 2048)

const benchKey = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0" // a hex SHA-256

func openBench(b *testing.B, opts Options) *Cache {
	b.Helper()
	c, err := Open(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkGetMemoryHit(b *testing.B) {
	ctx := context.Background()
	c := openBench(b, Options{})
	if err := c.Set(ctx, benchKey, benchValue); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, tier, _ := c.Get(ctx, benchKey); tier != Memory {
			b.Fatalf("tier %v", tier)
		}
	}
}

// BenchmarkGetDiskHit reads from SQLite on every call: the memory tier is
// off.
func BenchmarkGetDiskHit(b *testing.B) {
	ctx := context.Background()
	c := openBench(b, Options{Path: b.TempDir() + "/cache.db", MemoryEntries: -1})
	if err := c.Set(ctx, benchKey, benchValue); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, tier, _ := c.Get(ctx, benchKey); tier != Disk {
			b.Fatalf("tier %v", tier)
		}
	}
}

func BenchmarkGetMiss(b *testing.B) {
	ctx := context.Background()
	c := openBench(b, Options{Path: b.TempDir() + "/cache.db"})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := c.Get(ctx, benchKey); ok {
			b.Fatal("hit")
		}
	}
}

// BenchmarkSet stores 2 KB values under 1,000 rotating keys, so the disk
// sub-benchmark measures upserts of existing rows after the first round.
func BenchmarkSet(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%064x", i)
	}
	for _, bc := range []struct {
		name string
		opts func(b *testing.B) Options
	}{
		{"memory", func(*testing.B) Options { return Options{} }},
		{"memory+disk", func(b *testing.B) Options { return Options{Path: b.TempDir() + "/cache.db"} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			c := openBench(b, bc.opts(b))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := c.Set(ctx, keys[i%len(keys)], benchValue); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkGetParallel reads 1,000 keys from many goroutines at once.
func BenchmarkGetParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts func(b *testing.B) Options
	}{
		{"memory", func(*testing.B) Options { return Options{} }},
		{"disk", func(b *testing.B) Options { return Options{Path: b.TempDir() + "/cache.db", MemoryEntries: -1} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			c := openBench(b, bc.opts(b))
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = fmt.Sprintf("%064x", i)
				if err := c.Set(ctx, keys[i], benchValue); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, _, ok := c.Get(ctx, keys[i%len(keys)]); !ok {
						b.Error("miss")
						return
					}
					i++
				}
			})
		})
	}
}
