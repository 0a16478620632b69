// Package sqlitedb opens the SQLite files of DSPEx — the response cache's
// disk tier (core/cache) and the trace store (core/trace) — one way: a
// go-sqlite3 connector that needs no driver registered in package state, a
// file: URI that keeps odd file names intact, the pragmas both stores rely
// on, and files only their owner can read. Only those two packages import
// it, so only they link cgo SQLite.
package sqlitedb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Options say how Open opens a file. The zero value opens it for writing
// with no busy timeout and no pragma beyond the defaults below.
type Options struct {
	// BusyTimeout is how long a statement waits for another connection's
	// lock before failing with SQLITE_BUSY. 0: not at all.
	BusyTimeout time.Duration
	// ReadOnly opens the file read-only ("mode=ro"); such a handle never
	// creates the file and sets none of the write pragmas.
	ReadOnly bool
	// IncrementalVacuum sets auto_vacuum=incremental, which only takes
	// effect on a new file and lets a store hand freed pages back to the OS.
	IncrementalVacuum bool
	// WALSizeLimit, when > 0, is the journal_size_limit every writing
	// connection sets, so that whichever one checkpoints truncates the
	// write-ahead log to at most that many bytes.
	WALSizeLimit int
}

// Open returns a handle on the SQLite file at path (absolute). A writing
// handle uses synchronous=NORMAL (safe with WAL) and BEGIN IMMEDIATE
// transactions, so that writers queue on the busy timeout instead of
// failing on a lock upgrade. It does not connect: the first statement does.
func Open(path string, opts Options) *sql.DB {
	var hook func(*sqlite3.SQLiteConn) error
	if !opts.ReadOnly && opts.WALSizeLimit > 0 {
		pragma := "PRAGMA journal_size_limit = " + strconv.Itoa(opts.WALSizeLimit)
		hook = func(conn *sqlite3.SQLiteConn) error {
			_, err := conn.Exec(pragma, nil)
			return err
		}
	}
	return sql.OpenDB(connector{dsn: DSN(path, opts), drv: &sqlite3.SQLiteDriver{ConnectHook: hook}})
}

// DSN is the go-sqlite3 URI Open uses for path. Escaping the path keeps
// '?', '#' and '%' in file names from being read as URI syntax.
func DSN(path string, opts Options) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path // Windows: file:///C:/...
	}
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10))
	if opts.ReadOnly {
		q.Set("mode", "ro")
	} else {
		q.Set("_synchronous", "NORMAL")
		q.Set("_txlock", "immediate")
		if opts.IncrementalVacuum {
			q.Set("_auto_vacuum", "incremental")
		}
	}
	return u.String() + "?" + q.Encode()
}

// connector opens connections with go-sqlite3 directly, so that each gets
// the ConnectHook without registering a driver in package state.
type connector struct {
	dsn string
	drv *sqlite3.SQLiteDriver
}

var _ driver.Connector = connector{}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }

// Busy reports SQLite lock conflicts (SQLITE_BUSY, SQLITE_LOCKED) that are
// worth retrying.
func Busy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
}

// PrivateFile makes the database at path readable by its owner only, as
// the stores hold prompts and answers: a missing file is created empty with
// mode 0600 (SQLite gives the -wal and -shm files it creates the same
// mode), and an existing one, with its -wal and -shm files, loses any group
// and other permission. A file this process may not chmod (another user's)
// is left as it is. Its error does not repeat the path: the caller names it.
func PrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("create file: %w", pe.Err)
		}
		return fmt.Errorf("create file: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			_ = os.Chmod(p, fi.Mode().Perm()&0o700)
		}
	}
	return nil
}
