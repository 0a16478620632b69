package cache

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable Options.Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

// open opens a cache and closes it when the test ends.
func open(t *testing.T, opts Options) *Cache {
	t.Helper()
	c, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tempPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "cache.db")
}

func mustSet(t *testing.T, c *Cache, key string, value []byte) {
	t.Helper()
	if err := c.Set(context.Background(), key, value); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func wantGet(t *testing.T, c *Cache, key string, want []byte, wantTier Tier) {
	t.Helper()
	got, tier, ok := c.Get(context.Background(), key)
	if wantTier == Miss {
		if ok || tier != Miss {
			t.Fatalf("Get(%q) = %q, %v, %v; want a miss", key, got, tier, ok)
		}
		return
	}
	if !ok || tier != wantTier || !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %q, %v, %v; want %q, %v, true", key, got, tier, ok, want, wantTier)
	}
}

func stats(t *testing.T, c *Cache) Stats {
	t.Helper()
	s, err := c.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

// syncDisk runs the worker's maintenance now: pending access times are
// written and the size limit enforced.
func syncDisk(t *testing.T, c *Cache) {
	t.Helper()
	if err := c.disk.maintain(context.Background(), true); err != nil {
		t.Fatalf("maintain: %v", err)
	}
}

func TestMemoryHit(t *testing.T) {
	c := open(t, Options{})
	mustSet(t, c, "k", []byte("v"))
	wantGet(t, c, "k", []byte("v"), Memory)
	wantGet(t, c, "other", nil, Miss)
	mustSet(t, c, "k", []byte("v2"))
	wantGet(t, c, "k", []byte("v2"), Memory)
	if err := c.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, c, "k", nil, Miss)
}

func TestDiskHitAfterReopen(t *testing.T) {
	path := tempPath(t)
	c := open(t, Options{Path: path})
	mustSet(t, c, "k", []byte("value"))
	mustSet(t, c, "empty", []byte{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = open(t, Options{Path: path})
	wantGet(t, c, "k", []byte("value"), Disk)
	wantGet(t, c, "k", []byte("value"), Memory) // promoted
	wantGet(t, c, "empty", []byte{}, Disk)
	wantGet(t, c, "missing", nil, Miss)
	if err := c.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	c.Close()

	c = open(t, Options{Path: path})
	wantGet(t, c, "k", nil, Miss)
	wantGet(t, c, "empty", []byte{}, Disk)
}

func TestValuesAreCopies(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) Options
	}{
		{"memory", func(*testing.T) Options { return Options{} }},
		{"memory and disk", func(t *testing.T) Options { return Options{Path: tempPath(t)} }},
		{"disk only", func(t *testing.T) Options { return Options{Path: tempPath(t), MemoryEntries: -1} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, tc.opts(t))
			in := []byte("original")
			mustSet(t, c, "k", in)
			in[0] = 'X' // the caller's slice is theirs
			got, _, _ := c.Get(context.Background(), "k")
			if string(got) != "original" {
				t.Fatalf("after mutating Set's argument, Get = %q", got)
			}
			got[0] = 'Y' // so is what Get returned
			again, _, _ := c.Get(context.Background(), "k")
			if string(again) != "original" {
				t.Fatalf("after mutating Get's result, Get = %q", again)
			}
			again[1] = 'Z' // a disk hit's promoted copy is separate too
			wantGet(t, c, "k", []byte("original"), map[bool]Tier{true: Disk, false: Memory}[c.mem == nil])
		})
	}
}

func TestMemoryBounds(t *testing.T) {
	value := bytes.Repeat([]byte("x"), 30) // 32 bytes with a 2-byte key
	for _, tc := range []struct {
		name          string
		opts          Options
		sets          int
		wantEntries   int
		wantEvictions int64
	}{
		{"by entries", Options{MemoryEntries: 3}, 5, 3, 2},
		{"by bytes", Options{MemoryBytes: 100}, 5, 3, 2},
		{"both", Options{MemoryEntries: 2, MemoryBytes: 100}, 5, 2, 3},
		{"unbounded bytes", Options{MemoryEntries: 10, MemoryBytes: -1}, 5, 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, tc.opts)
			for i := range tc.sets {
				mustSet(t, c, fmt.Sprintf("k%d", i), value)
			}
			s := stats(t, c)
			if s.MemoryEntries != tc.wantEntries || s.MemoryBytes != int64(32*tc.wantEntries) || s.MemoryEvictions != tc.wantEvictions {
				t.Fatalf("stats = %d entries, %d bytes, %d evictions; want %d, %d, %d",
					s.MemoryEntries, s.MemoryBytes, s.MemoryEvictions, tc.wantEntries, 32*tc.wantEntries, tc.wantEvictions)
			}
			// The most recent entries stay; the oldest went first.
			for i := range tc.sets {
				key := fmt.Sprintf("k%d", i)
				if i < tc.sets-tc.wantEntries {
					wantGet(t, c, key, nil, Miss)
				} else {
					wantGet(t, c, key, value, Memory)
				}
			}
		})
	}
}

func TestMemoryLRUOrder(t *testing.T) {
	c := open(t, Options{MemoryEntries: 2})
	mustSet(t, c, "a", []byte("1"))
	mustSet(t, c, "b", []byte("2"))
	wantGet(t, c, "a", []byte("1"), Memory) // a is now the most recent
	mustSet(t, c, "c", []byte("3"))
	wantGet(t, c, "b", nil, Miss)
	wantGet(t, c, "a", []byte("1"), Memory)
}

func TestValueLargerThanMemoryBoundStaysOnDisk(t *testing.T) {
	c := open(t, Options{Path: tempPath(t), MemoryBytes: 10})
	big := bytes.Repeat([]byte("b"), 100)
	mustSet(t, c, "small", []byte("s"))
	mustSet(t, c, "big", big)
	wantGet(t, c, "big", big, Disk)
	wantGet(t, c, "big", big, Disk) // never promoted
	wantGet(t, c, "small", []byte("s"), Memory)
}

func TestMaxValueBytes(t *testing.T) {
	c := open(t, Options{Path: tempPath(t), MaxValueBytes: 4})
	mustSet(t, c, "ok", []byte("1234"))
	mustSet(t, c, "big", []byte("12345")) // skipped, not an error
	wantGet(t, c, "ok", []byte("1234"), Memory)
	wantGet(t, c, "big", nil, Miss)
	if s := stats(t, c); s.Skipped != 1 || s.Sets != 1 || s.DiskEntries != 1 {
		t.Fatalf("stats = %+v; want 1 skipped, 1 set, 1 disk entry", s)
	}
}

func TestDiskEvictionKeepsRecentlyAccessed(t *testing.T) {
	clock := newFakeClock()
	c := open(t, Options{Path: tempPath(t), MemoryEntries: -1, MaxDiskBytes: 10_000, Clock: clock.Now})
	value := bytes.Repeat([]byte("v"), 997) // 1,000 bytes with a 3-byte key
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	for i := range 8 {
		mustSet(t, c, key(i), value)
		clock.Advance(time.Minute)
	}
	// k00 is the oldest write but is read now, so it is kept.
	clock.Advance(2 * time.Minute)
	wantGet(t, c, key(0), value, Disk)
	syncDisk(t, c)
	for i := 8; i < 11; i++ {
		clock.Advance(time.Minute)
		mustSet(t, c, key(i), value)
	}
	syncDisk(t, c)

	// The worker may have evicted after k09 (10,000 bytes is not over the
	// limit; 10,100 would be) or only in syncDisk: either way the oldest
	// accesses go first and the payload ends within the limit.
	s := stats(t, c)
	if s.DiskBytes > 10_000 || s.DiskEvictions < 1 {
		t.Fatalf("after eviction: %d bytes, %d evictions; want at most 10,000 bytes and some evictions", s.DiskBytes, s.DiskEvictions)
	}
	if s.DiskEntries != 11-s.DiskEvictions || s.DiskBytes != 1000*s.DiskEntries {
		t.Fatalf("stats = %d entries, %d bytes after %d evictions; want %d entries of 1,000 bytes", s.DiskEntries, s.DiskBytes, s.DiskEvictions, 11-s.DiskEvictions)
	}
	for i := 1; i <= 10; i++ {
		if i <= int(s.DiskEvictions) {
			wantGet(t, c, key(i), nil, Miss)
		} else {
			wantGet(t, c, key(i), value, Disk)
		}
	}
	wantGet(t, c, key(0), value, Disk)
}

func TestEvictionOnOpenWithSmallerLimit(t *testing.T) {
	path := tempPath(t)
	clock := newFakeClock()
	c := open(t, Options{Path: path, Clock: clock.Now})
	value := bytes.Repeat([]byte("v"), 98)
	for i := range 100 {
		mustSet(t, c, fmt.Sprintf("%02d", i), value) // 100 bytes each
		clock.Advance(time.Second)
	}
	c.Close()

	c = open(t, Options{Path: path, MaxDiskBytes: 5_000, Clock: clock.Now})
	syncDisk(t, c)
	s := stats(t, c)
	if s.DiskEntries != 45 || s.DiskBytes != 4_500 {
		t.Fatalf("after opening with a 5,000-byte limit: %d entries, %d bytes; want 45, 4,500", s.DiskEntries, s.DiskBytes)
	}
	wantGet(t, c, "54", nil, Miss)
	wantGet(t, c, "55", value, Disk)
}

func TestAccessTimeWrittenOnClose(t *testing.T) {
	path := tempPath(t)
	clock := newFakeClock()
	c := open(t, Options{Path: path, Clock: clock.Now})
	mustSet(t, c, "k", []byte("v"))
	clock.Advance(30 * time.Second)
	wantGet(t, c, "k", []byte("v"), Memory) // fresher than a minute: no write
	clock.Advance(5 * time.Minute)
	wantGet(t, c, "k", []byte("v"), Memory) // stale: recorded
	want := clock.Now().UnixMilli()
	c.Close()

	if got := accessedAt(t, path, "k"); got != want {
		t.Fatalf("accessed_at = %d; want %d", got, want)
	}
}

func accessedAt(t *testing.T, path, key string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var at int64
	if err := db.QueryRow(`SELECT accessed_at FROM entries WHERE key = ?`, key).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

func TestClear(t *testing.T) {
	path := tempPath(t)
	c := open(t, Options{Path: path})
	for i := range 10 {
		mustSet(t, c, fmt.Sprint(i), []byte("v"))
	}
	if err := c.Clear(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantGet(t, c, "3", nil, Miss)
	if s := stats(t, c); s.MemoryEntries != 0 || s.MemoryBytes != 0 || s.DiskEntries != 0 || s.DiskBytes != 0 {
		t.Fatalf("after Clear: %+v", s)
	}
	mustSet(t, c, "after", []byte("v"))
	c.Close()

	c = open(t, Options{Path: path})
	if s := stats(t, c); s.DiskEntries != 1 {
		t.Fatalf("reopened after Clear: %d entries; want 1", s.DiskEntries)
	}
	if err := c.Check(context.Background()); err != nil {
		t.Fatalf("Check after Clear: %v", err)
	}
}

func TestStats(t *testing.T) {
	path := tempPath(t)
	c := open(t, Options{Path: path})
	mustSet(t, c, "a", []byte("123"))   // 4 bytes
	mustSet(t, c, "b", []byte("12345")) // 6 bytes
	mustSet(t, c, "a", []byte("1"))     // replaces: 2 bytes
	c.Get(context.Background(), "a")
	c.Get(context.Background(), "nope")
	c.Close()

	c = open(t, Options{Path: path})
	c.Get(context.Background(), "b") // disk
	c.Get(context.Background(), "b") // memory
	c.Get(context.Background(), "nope")
	mustSet(t, c, "c", []byte("1"))

	got := stats(t, c)
	want := Stats{
		Path: path, SchemaVersion: SchemaVersion,
		MemoryEntries: 2, MemoryBytes: 8,
		DiskEntries: 3, DiskBytes: 10,
		MemoryHits: 1, DiskHits: 1, Misses: 1, Sets: 1,
	}
	got.FileBytes = 0
	if got != want {
		t.Fatalf("Stats =\n%+v\nwant\n%+v", got, want)
	}
}

func TestCheck(t *testing.T) {
	c := open(t, Options{Path: tempPath(t)})
	if err := c.Check(context.Background()); err != nil {
		t.Fatalf("Check on a new file: %v", err)
	}
	m := open(t, Options{})
	if err := m.Check(context.Background()); !errors.Is(err, ErrDiskUnavailable) {
		t.Fatalf("Check on a memory-only cache = %v; want ErrDiskUnavailable", err)
	}
}

func TestMissingParentDirectoryIsCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "cache.db")
	c := open(t, Options{Path: path})
	mustSet(t, c, "k", []byte("v"))
	if s := stats(t, c); s.DiskEntries != 1 || s.DiskError != "" {
		t.Fatalf("stats = %+v", s)
	}
}

func TestConcurrentUse(t *testing.T) {
	c := open(t, Options{Path: tempPath(t), MemoryEntries: 50, MaxDiskBytes: 20_000})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				key := fmt.Sprintf("k%d", (g*7+i)%100)
				switch i % 10 {
				case 0:
					if err := c.Delete(ctx, key); err != nil {
						t.Error(err)
					}
				case 1, 2, 3:
					if err := c.Set(ctx, key, []byte(key+"-value")); err != nil {
						t.Error(err)
					}
				case 4:
					if _, err := c.Stats(ctx); err != nil {
						t.Error(err)
					}
				default:
					if v, _, ok := c.Get(ctx, key); ok && string(v) != key+"-value" {
						t.Errorf("Get(%q) = %q", key, v)
					}
				}
			}
		})
	}
	wg.Wait()
	if s := stats(t, c); s.DiskError != "" {
		t.Fatalf("disk error after concurrent use: %s", s.DiskError)
	}
}

func TestClosedCache(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) Options
	}{
		{"memory", func(*testing.T) Options { return Options{} }},
		{"disk", func(t *testing.T) Options { return Options{Path: tempPath(t)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c, err := Open(ctx, tc.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			mustSet(t, c, "k", []byte("v"))
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			wantGet(t, c, "k", nil, Miss)
			for name, err := range map[string]error{
				"Set":    c.Set(ctx, "k", []byte("v")),
				"Delete": c.Delete(ctx, "k"),
				"Clear":  c.Clear(ctx),
				"Check":  c.Check(ctx),
			} {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("%s after Close = %v; want ErrClosed", name, err)
				}
			}
			if _, err := c.Stats(ctx); !errors.Is(err, ErrClosed) {
				t.Errorf("Stats after Close = %v; want ErrClosed", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("second Close = %v", err)
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	c := open(t, Options{Path: tempPath(t), MemoryEntries: -1})
	mustSet(t, c, "k", []byte("v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, ok := c.Get(ctx, "k"); ok {
		t.Fatal("Get with a cancelled context hit")
	}
	if err := c.Set(ctx, "k2", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Set with a cancelled context = %v; want context.Canceled", err)
	}
	// A cancelled call is not a disk fault.
	if s := stats(t, c); s.DiskError != "" {
		t.Fatalf("DiskError = %q after a cancelled call", s.DiskError)
	}
	wantGet(t, c, "k", []byte("v"), Disk)
}

func TestTierString(t *testing.T) {
	for tier, want := range map[Tier]string{Miss: "miss", Memory: "memory", Disk: "disk", 9: "Tier(9)"} {
		if got := tier.String(); got != want {
			t.Errorf("Tier(%d).String() = %q; want %q", tier, got, want)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	t.Setenv("HOME", "/tmp/home")
	path, err := DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, filepath.Join("dspex", "lm-cache.db")) {
		t.Fatalf("DefaultPath = %q", path)
	}
}

func TestPathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "we?ird#na%20me.db")
	c := open(t, Options{Path: path})
	mustSet(t, c, "k", []byte("v"))
	c.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file is not at the path given: %v", err)
	}
	c = open(t, Options{Path: path})
	wantGet(t, c, "k", []byte("v"), Disk)
}

func TestCloseWhileInUse(t *testing.T) {
	c, err := Open(context.Background(), Options{Path: tempPath(t), MemoryEntries: 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("k%d", (g+i)%50)
				c.Get(ctx, key)
				if err := c.Set(ctx, key, []byte(key)); errors.Is(err, ErrClosed) {
					return
				} else if err != nil {
					t.Errorf("Set during Close: %v", err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
