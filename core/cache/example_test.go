package cache_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dspex/dspex/core/cache"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cache-example")
	defer os.RemoveAll(dir)

	c, err := cache.Open(ctx, cache.Options{Path: filepath.Join(dir, "lm-cache.db")})
	if errors.Is(err, cache.ErrDiskUnavailable) {
		fmt.Println("warning:", err) // c still works, from memory
	}
	defer c.Close()

	if err := c.Set(ctx, "key", []byte(`{"answer": "Paris"}`)); err != nil {
		fmt.Println(err)
	}
	value, tier, ok := c.Get(ctx, "key")
	fmt.Println(string(value), tier, ok)
	// Output: {"answer": "Paris"} memory true
}
