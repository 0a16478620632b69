package trace

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
)

// rawDB opens path with a plain read-write connection.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db := openDB(path, time.Second, false)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db := rawDB(t, path)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()
}

// TestMigrateFromVersion1 builds a file as the first release left it —
// only migration 1 applied, with rows in it — and opens it.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := tempDB(t)
	db := rawDB(t, path)
	if _, err := db.Exec(`PRAGMA journal_mode = WAL`); err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, 1); err != nil {
		t.Fatal(err)
	}
	ns := t0.UnixNano()
	for _, s := range []string{
		`INSERT INTO runs (id, name, started_at, start_seen, ended_at, updated_at, status, calls) VALUES ('old', 'run', ` + itoa(ns) + `, 1, ` + itoa(ns+5e9) + `, ` + itoa(ns+5e9) + `, 'ok', 1)`,
		`INSERT INTO spans (id, run_id, parent_id, kind, name, inputs, started_at, ended_at) VALUES ('m', 'old', '', 'module', 'Predict', '{"q":1}', ` + itoa(ns+1e9) + `, ` + itoa(ns+4e9) + `)`,
		`INSERT INTO spans (id, run_id, parent_id, kind, name, started_at, ended_at) VALUES ('l', 'old', 'm', 'lm', 'gpt', ` + itoa(ns+2e9) + `, ` + itoa(ns+3e9) + `)`,
		`INSERT INTO lm_calls (span_id, run_id, model, messages, completions, prompt_tokens, completion_tokens, total_tokens, created_at, ended_at)
			VALUES ('l', 'old', 'gpt', '[{"role":"user","content":"hi"}]', '["yo"]', 3, 1, 4, ` + itoa(ns+2e9) + `, ` + itoa(ns+3e9) + `)`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()

	// A reader reads a version 1 file as it is.
	r := openReader(t, path)
	if r.SchemaVersion() != 1 {
		t.Fatalf("schema version %d; want 1", r.SchemaVersion())
	}
	if ev, err := r.Events(ctx, "old"); err != nil || ev != nil {
		t.Fatalf("Events on a version 1 file = %v, %v; want nothing", ev, err)
	}
	if spans, err := r.Spans(ctx, "old"); err != nil || len(spans) != 2 {
		t.Fatalf("Spans on a version 1 file = %v, %v", spans, err)
	}
	if calls, err := r.LMCalls(ctx, LMCallQuery{RunID: "old"}); err != nil || len(calls) != 1 || calls[0].FinishReasons != nil {
		t.Fatalf("LMCalls on a version 1 file = %+v, %v", calls, err)
	}
	r.Close()

	s, bus := openStore(t, path, Options{})
	newEmitter(bus, "new", t0.Add(time.Hour)).emit(event.LMRetry, "l2", "", &event.LMRetryInfo{Model: "gpt", Attempt: 1})
	closeStore(t, s)

	r = openReader(t, path)
	if r.SchemaVersion() != SchemaVersion {
		t.Fatalf("schema version after Open = %d; want %d", r.SchemaVersion(), SchemaVersion)
	}
	run, err := r.Run(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if run.Name != "run" || run.Status != "ok" || run.Spans != 2 || run.Recorded.Calls != 1 || run.Duration() != 5*time.Second {
		t.Errorf("migrated run = %+v", run)
	}
	calls, err := r.LMCalls(ctx, LMCallQuery{RunID: "old"})
	if err != nil || len(calls) != 1 || calls[0].Messages[0].Content != "hi" || calls[0].Completions[0] != "yo" || calls[0].ParentID != "m" {
		t.Errorf("migrated LM calls = %+v, %v", calls, err)
	}
	if ev, err := r.Events(ctx, "new"); err != nil || len(ev) != 1 {
		t.Errorf("events written after migrating = %+v, %v", ev, err)
	}
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestOpenRefusesFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		is    error  // errors.Is target, when there is one
		msg   string // in the message; PATH stands for the path
	}{
		{"newer schema", func(t *testing.T, path string) {
			s, _ := openStore(t, path, Options{})
			closeStore(t, s)
			rawExec(t, path, `UPDATE trace_meta SET value = 7 WHERE name = 'schema_version'`)
		}, ErrNewerSchema, "trace: database PATH has schema version 7, newer than this dspex (" + strconv.Itoa(SchemaVersion) + "); upgrade dspex"},
		{"another database", func(t *testing.T, path string) {
			rawExec(t, path, `CREATE TABLE customers (id INTEGER PRIMARY KEY)`, `CREATE TABLE orders (id INTEGER PRIMARY KEY)`)
		}, ErrNotTraceDB, "trace: not a dspex trace database: PATH holds other tables (customers, orders)"},
		{"a dspex cache file", func(t *testing.T, path string) {
			rawExec(t, path, `CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID`,
				`CREATE TABLE entries (key TEXT PRIMARY KEY, value BLOB)`,
				`INSERT INTO meta VALUES ('schema_version', 1)`)
		}, ErrNotTraceDB, "PATH holds other tables (entries, meta)"},
		{"no version row", func(t *testing.T, path string) {
			rawExec(t, path, `CREATE TABLE trace_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`)
		}, ErrNotTraceDB, "PATH has no schema version"},
		{"random bytes", func(t *testing.T, path string) {
			b := make([]byte, 8192)
			rand.NewChaCha8([32]byte{1}).Read(b)
			writeFile(t, path, b)
		}, nil, "trace: open database PATH: file is not a database"},
		{"text file", func(t *testing.T, path string) {
			writeFile(t, path, bytes.Repeat([]byte("not a database\n"), 200))
		}, nil, "file is not a database"},
		{"damaged database", func(t *testing.T, path string) {
			s, bus := openStore(t, path, Options{})
			newEmitter(bus, "r", t0).call("")
			closeStore(t, s)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := 100; i < 4096; i++ { // the schema page, after the file header
				b[i] = 0xA5
			}
			writeFile(t, path, b)
		}, nil, "malformed"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, nil, "trace: open database PATH: is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tempDB(t)
			tc.setup(t, path)
			want := strings.ReplaceAll(tc.msg, "PATH", path)
			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s succeeded; want an error", what)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("%s error %v; want one wrapping %v", what, err, tc.is)
				}
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s error %q; want it to contain %q", what, err, want)
				}
			}
			before, _ := os.ReadFile(path)
			s, err := Open(context.Background(), path, Options{})
			if s != nil {
				s.Close()
			}
			check("Open", err)
			r, err := OpenReader(context.Background(), path)
			if r != nil {
				r.Close()
			}
			check("OpenReader", err)
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("a refused file was changed")
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

func TestOpenReaderMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "traces.db")
	_, err := OpenReader(context.Background(), path)
	if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenReader of a missing file = %v; want ErrNoDatabase naming the path", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Error("OpenReader created the directory")
	}
}

func TestOpenCreatesParentDirectories(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "c", "traces.db")
	s, _ := openStore(t, path, Options{})
	closeStore(t, s)
	r := openReader(t, path)
	if r.SchemaVersion() != SchemaVersion {
		t.Errorf("schema version %d", r.SchemaVersion())
	}
	var mode string
	if err := r.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q, %v; want wal", mode, err)
	}
	var vacuum int
	if err := r.db.QueryRow(`PRAGMA auto_vacuum`).Scan(&vacuum); err != nil || vacuum != 2 {
		t.Errorf("auto_vacuum %d, %v; want 2 (incremental)", vacuum, err)
	}
}

// TestEmptyFile: an empty file (another process has just created it) reads
// as an empty store and opens as a new one.
func TestEmptyFile(t *testing.T) {
	path := tempDB(t)
	writeFile(t, path, nil)
	r := openReader(t, path)
	if runs, err := r.Runs(context.Background(), ListOptions{}); err != nil || runs != nil {
		t.Errorf("Runs = %v, %v", runs, err)
	}
	if _, err := r.Run(context.Background(), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Run = %v; want ErrNotFound", err)
	}
	r.Close()
	s, _ := openStore(t, path, Options{})
	closeStore(t, s)
}

func TestDefaultPath(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory")
	}
	for _, tc := range []struct {
		name, db, state, want string
	}{
		{"DSPEX_DB wins", "/x/my.db", "/state", "/x/my.db"},
		{"XDG_STATE_HOME", "", "/state", "/state/dspex/traces.db"},
		{"relative XDG_STATE_HOME is ignored", "", "rel", filepath.Join(home, ".local/state/dspex/traces.db")},
		{"home", "", "", filepath.Join(home, ".local/state/dspex/traces.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DSPEX_DB", tc.db)
			t.Setenv("XDG_STATE_HOME", tc.state)
			got, err := DefaultPath()
			if err != nil || got != tc.want {
				t.Errorf("DefaultPath() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestConcurrentOpensOfANewFile: processes starting at once race to create
// and migrate one file; goroutines with their own handles do the same.
func TestConcurrentOpensOfANewFile(t *testing.T) {
	path := tempDB(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), path, Options{})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	r := openReader(t, path)
	if r.SchemaVersion() != SchemaVersion {
		t.Errorf("schema version %d", r.SchemaVersion())
	}
}
