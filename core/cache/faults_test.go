package cache

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeValidCache makes a cache file at path holding a few entries.
func writeValidCache(t *testing.T, path string) {
	t.Helper()
	c := open(t, Options{Path: path})
	for i := range 200 {
		mustSet(t, c, string(rune('a'+i%26))+strings.Repeat("k", i), bytes.Repeat([]byte{byte(i)}, 500))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// rawExec runs statements on the file with a plain connection.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestOpenFaultsFallBackToMemory(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, path string) // makes path unusable
		problem string                          // in the error message
	}{
		{"random bytes", func(t *testing.T, path string) {
			b := make([]byte, 8192)
			r := rand.NewChaCha8([32]byte{1})
			r.Read(b)
			writeFile(t, path, b)
		}, "file is not a database"},
		{"text file", func(t *testing.T, path string) {
			writeFile(t, path, bytes.Repeat([]byte("this is not a database\n"), 100))
		}, "file is not a database"},
		{"damaged database", func(t *testing.T, path string) {
			writeValidCache(t, path)
			// Overwrite the schema page after the file header.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := 100; i < 4096; i++ {
				b[i] = 0xA5
			}
			writeFile(t, path, b)
		}, "malformed"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
		{"parent is a file", func(t *testing.T, path string) {
			writeFile(t, filepath.Dir(path), []byte("x"))
		}, "not a directory"},
		{"newer schema", func(t *testing.T, path string) {
			writeValidCache(t, path)
			rawExec(t, path, `UPDATE meta SET value = 99 WHERE name = 'schema_version'`)
		}, "schema version 99 is newer than this program supports (1)"},
		{"another database", func(t *testing.T, path string) {
			rawExec(t, path, `CREATE TABLE spans (id INTEGER PRIMARY KEY)`)
		}, "not a dspex cache"},
		{"unreadable file", func(t *testing.T, path string) {
			writeValidCache(t, path)
			if err := os.Chmod(path, 0); err != nil {
				t.Fatal(err)
			}
			if f, err := os.Open(path); err == nil {
				f.Close()
				t.Skip("file permissions do not apply (running as root?)")
			}
		}, "unable to open database file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sub")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "cache.db")
			if tc.name == "parent is a file" {
				os.Remove(dir)
			}
			tc.setup(t, path)

			c, err := Open(context.Background(), Options{Path: path})
			if c == nil {
				t.Fatalf("Open returned no cache (err %v)", err)
			}
			defer c.Close()
			if !errors.Is(err, ErrDiskUnavailable) {
				t.Fatalf("Open error = %v; want ErrDiskUnavailable", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "cache: disk tier unavailable: "+path+": ") ||
				!strings.Contains(msg, tc.problem) || !strings.HasSuffix(msg, "; using memory only") {
				t.Fatalf("Open error = %q; want the path, %q and the fallback", msg, tc.problem)
			}
			t.Log(msg)

			// The cache works from memory.
			mustSet(t, c, "k", []byte("v"))
			wantGet(t, c, "k", []byte("v"), Memory)
			s := stats(t, c)
			if s.DiskError == "" || !strings.Contains(s.DiskError, path) || s.MemoryEntries != 1 || s.DiskEntries != 0 {
				t.Fatalf("stats = %+v; want a DiskError naming the path and one memory entry", s)
			}
			if err := c.Check(context.Background()); !errors.Is(err, ErrDiskUnavailable) {
				t.Fatalf("Check = %v; want ErrDiskUnavailable", err)
			}
		})
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDiskFailureMidRunDegradesToMemory(t *testing.T) {
	ctx := context.Background()
	path := tempPath(t)
	writeValidCache(t, path)
	c := open(t, Options{Path: path})
	mustSet(t, c, "k", []byte("v"))

	// Fault injection: the database handle goes away under the cache, as
	// after an I/O error that leaves it unusable.
	c.disk.db.Close()

	wantGet(t, c, "k", []byte("v"), Memory)
	wantGet(t, c, "akk", nil, Miss) // on disk, but the disk is gone: a miss, not a panic
	s := stats(t, c)
	if !strings.Contains(s.DiskError, path) || !strings.Contains(s.DiskError, "closed") {
		t.Fatalf("DiskError = %q; want the path and the cause", s.DiskError)
	}
	if err := c.Set(ctx, "k2", []byte("v2")); err != nil {
		t.Fatalf("Set after the disk failed = %v; want nil", err)
	}
	wantGet(t, c, "k2", []byte("v2"), Memory)
	if err := c.Delete(ctx, "k2"); err != nil {
		t.Fatalf("Delete after the disk failed = %v", err)
	}
	if err := c.Clear(ctx); err != nil {
		t.Fatalf("Clear after the disk failed = %v", err)
	}
	if err := c.Check(ctx); !errors.Is(err, ErrDiskUnavailable) {
		t.Fatalf("Check after the disk failed = %v; want ErrDiskUnavailable", err)
	}
	c.Close()
}

func TestDiskFailureInSetDegrades(t *testing.T) {
	c := open(t, Options{Path: tempPath(t), MemoryEntries: -1})
	c.disk.db.Close()
	if err := c.Set(context.Background(), "k", []byte("v")); err != nil {
		t.Fatalf("Set when the disk fails = %v; want nil", err)
	}
	if s := stats(t, c); s.DiskError == "" {
		t.Fatal("no DiskError after a failed Set")
	}
}

func TestDiskFileCorruptedMidRun(t *testing.T) {
	path := tempPath(t)
	writeValidCache(t, path)
	c := open(t, Options{Path: path, MemoryEntries: -1})
	// Another program scribbles over the file (and its log) while we run.
	// SQLite notices when it next reads a damaged page.
	junk := bytes.Repeat([]byte{0xA5}, 64<<10)
	for _, p := range []string{path, path + "-wal"} {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			continue
		}
		f.WriteAt(junk, 0)
		f.Close()
	}
	for i := range 200 {
		c.Get(context.Background(), string(rune('a'+i%26))+strings.Repeat("k", i))
	}
	if err := c.Set(context.Background(), "new", []byte("v")); err != nil {
		t.Fatalf("Set on a damaged file = %v; want nil", err)
	}
	s := stats(t, c)
	t.Logf("disk error: %q", s.DiskError)
	if s.DiskError == "" {
		t.Fatal("no DiskError after the file was overwritten")
	}
}

// Losing the disk tier mid-run is reported once through OnDiskFailure,
// however many operations fail after it.
func TestDiskFailureIsReportedOnce(t *testing.T) {
	path := tempPath(t)
	var mu sync.Mutex
	var got []error
	c := open(t, Options{Path: path, MemoryEntries: -1, OnDiskFailure: func(err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}})
	mustSet(t, c, "k", []byte("v"))
	c.disk.db.Close()
	for range 5 {
		_ = c.Set(context.Background(), "k2", []byte("v2"))
		wantGet(t, c, "k", nil, Miss)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("OnDiskFailure called %d times, want once: %v", len(got), got)
	}
	if !errors.Is(got[0], ErrDiskUnavailable) || !strings.Contains(got[0].Error(), path) || !strings.Contains(got[0].Error(), "going on from memory") {
		t.Errorf("OnDiskFailure(%v): want ErrDiskUnavailable naming the path and saying the cache goes on", got[0])
	}
}
