package sqlitedb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDSN(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"write", Options{BusyTimeout: 5 * time.Second},
			"file:///d/a%3Fb%23c%25.db?_busy_timeout=5000&_synchronous=NORMAL&_txlock=immediate"},
		{"vacuum", Options{IncrementalVacuum: true},
			"file:///d/a%3Fb%23c%25.db?_auto_vacuum=incremental&_busy_timeout=0&_synchronous=NORMAL&_txlock=immediate"},
		{"read only", Options{ReadOnly: true, IncrementalVacuum: true, BusyTimeout: time.Second},
			"file:///d/a%3Fb%23c%25.db?_busy_timeout=1000&mode=ro"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := DSN("/d/a?b#c%.db", c.opts); got != c.want {
				t.Errorf("DSN = %q, want %q", got, c.want)
			}
		})
	}
}

// A written file is private, has the WAL size limit on every connection,
// and a read-only handle reads it and cannot write.
func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x?.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := PrivateFile(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after PrivateFile = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	db := Open(path, Options{BusyTimeout: time.Second, WALSizeLimit: 1 << 20})
	defer db.Close()
	var limit int
	if err := db.QueryRowContext(t.Context(), "PRAGMA journal_size_limit").Scan(&limit); err != nil || limit != 1<<20 {
		t.Fatalf("journal_size_limit = %d, %v; want %d", limit, err, 1<<20)
	}
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	ro := Open(path, Options{ReadOnly: true})
	defer ro.Close()
	var n int
	if err := ro.QueryRowContext(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatalf("read: %v", err)
	}
	if _, err := ro.ExecContext(t.Context(), "INSERT INTO t VALUES (1)"); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("write through a read-only handle: %v, want a readonly error", err)
	}
}

func TestPrivateFileCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	if err := PrivateFile(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if err := PrivateFile(filepath.Join(path, "sub")); err == nil || strings.Contains(err.Error(), path) {
		t.Errorf("PrivateFile under a file = %v, want an error without the path", err)
	}
}
