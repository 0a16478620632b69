package cache

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	helperEnv      = "DSPEX_CACHE_HELPER_PATH"
	helperPrefix   = "DSPEX_CACHE_HELPER_PREFIX"
	helperLimit    = "DSPEX_CACHE_HELPER_LIMIT"
	keysPerProcess = 500
)

// TestHelperProcess is not a test: TestProcessesShareOneFile runs the test
// binary with helperEnv set, and then this writes keysPerProcess keys to the
// file it names, as a separate process would.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper for TestProcessesShareOneFile")
	}
	prefix := os.Getenv(helperPrefix)
	limit, _ := strconv.ParseInt(os.Getenv(helperLimit), 10, 64)
	ctx := context.Background()
	c, err := Open(ctx, Options{Path: path, MemoryEntries: -1, MaxDiskBytes: limit})
	if err != nil {
		t.Fatalf("helper %s: %v", prefix, err)
	}
	for i := range keysPerProcess {
		key := fmt.Sprintf("%s-%d", prefix, i)
		if err := c.Set(ctx, key, value(key)); err != nil {
			t.Fatalf("helper %s: %v", prefix, err)
		}
		// Read the other process's keys too, so reads and writes interleave.
		c.Get(ctx, fmt.Sprintf("%s-%d", map[string]string{"a": "b", "b": "a"}[prefix], i))
	}
	if s, _ := c.Stats(ctx); s.DiskError != "" {
		t.Fatalf("helper %s: %s", prefix, s.DiskError)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("helper %s: %v", prefix, err)
	}
}

// value is what the helpers store under key: 100 bytes.
func value(key string) []byte { return []byte(key + strings.Repeat(".", 100-len(key))) }

func TestProcessesShareOneFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tc := range []struct {
		name  string
		limit int64
	}{
		{"no eviction", 0},
		{"with eviction", 20_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tempPath(t) // not created yet: both children race to create it
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			runHelpers(ctx, t, path, tc.limit, "a", "b")

			c := open(t, Options{Path: path, MemoryEntries: -1, MaxDiskBytes: tc.limit})
			if tc.limit > 0 {
				syncDisk(t, c) // the children may have exited with an eviction due
			}
			s := stats(t, c)
			if s.DiskError != "" {
				t.Fatal(s.DiskError)
			}
			entries, bytes := countRows(t, path)
			if s.DiskEntries != entries || s.DiskBytes != bytes {
				t.Fatalf("meta says %d entries, %d bytes; the table holds %d, %d", s.DiskEntries, s.DiskBytes, entries, bytes)
			}
			if tc.limit == 0 {
				if s.DiskEntries != 2*keysPerProcess {
					t.Fatalf("after two processes wrote %d keys each: %d entries", keysPerProcess, s.DiskEntries)
				}
				for _, prefix := range []string{"a", "b"} {
					for i := range keysPerProcess {
						key := fmt.Sprintf("%s-%d", prefix, i)
						wantGet(t, c, key, value(key), Disk)
					}
				}
			} else if s.DiskBytes > tc.limit || s.DiskEntries == 0 {
				t.Fatalf("after eviction: %d entries, %d bytes; want some, and at most %d bytes", s.DiskEntries, s.DiskBytes, tc.limit)
			}
			if err := c.Check(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// runHelpers runs one helper process per prefix at once and waits for all.
func runHelpers(ctx context.Context, t *testing.T, path string, limit int64, prefixes ...string) {
	t.Helper()
	type result struct {
		out []byte
		err error
	}
	results := make(chan result, len(prefixes))
	for _, prefix := range prefixes {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+path, helperPrefix+"="+prefix,
			helperLimit+"="+strconv.FormatInt(limit, 10))
		go func() {
			out, err := cmd.CombinedOutput()
			results <- result{out, err}
		}()
	}
	for range prefixes {
		if r := <-results; r.err != nil {
			t.Errorf("helper failed: %v\n%s", r.err, r.out)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// countRows counts the entries table directly.
func countRows(t *testing.T, path string) (entries, bytes int64) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM entries`).Scan(&entries, &bytes); err != nil {
		t.Fatal(err)
	}
	return entries, bytes
}
