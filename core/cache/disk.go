package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/dspex/dspex/core/internal/sqlitedb"
)

const (
	// touchInterval is how stale a disk row's access time may get before a
	// hit refreshes it: eviction order only needs minute precision, and
	// skipping fresher updates keeps hot keys from costing a write each.
	touchInterval = time.Minute
	// flushInterval is how often pending access times are written.
	flushInterval = time.Second
	// touchBatch pending access times wake the worker early;
	// maxPendingTouches bounds them (more are dropped until the next flush).
	touchBatch        = 256
	maxPendingTouches = 4096
	// evictBatchMax bounds the rows one eviction statement deletes and
	// evictRoundsMax the statements one eviction pass runs.
	evictBatchMax  = 1000
	evictRoundsMax = 1000
	// walSizeLimit is the size the write-ahead log is truncated to after a
	// checkpoint.
	walSizeLimit = 64 << 20
)

// schema creates version 1 of the file. The triggers keep the entry count
// and payload size in meta, so Stats and the eviction check are single-row
// reads that also see other processes' writes.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS entries (
		key TEXT PRIMARY KEY,
		value BLOB NOT NULL,
		size INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		accessed_at INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS entries_accessed_at ON entries (accessed_at)`,
	`CREATE TRIGGER IF NOT EXISTS entries_insert AFTER INSERT ON entries BEGIN
		UPDATE meta SET value = value + 1 WHERE name = 'entries';
		UPDATE meta SET value = value + NEW.size WHERE name = 'bytes';
	END`,
	`CREATE TRIGGER IF NOT EXISTS entries_delete AFTER DELETE ON entries BEGIN
		UPDATE meta SET value = value - 1 WHERE name = 'entries';
		UPDATE meta SET value = value - OLD.size WHERE name = 'bytes';
	END`,
	`CREATE TRIGGER IF NOT EXISTS entries_resize AFTER UPDATE OF size ON entries BEGIN
		UPDATE meta SET value = value - OLD.size + NEW.size WHERE name = 'bytes';
	END`,
	`INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', 1), ('entries', 0), ('bytes', 0)`,
}

const (
	getSQL = `SELECT value, accessed_at FROM entries WHERE key = ?`
	setSQL = `INSERT INTO entries (key, value, size, created_at, accessed_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size, accessed_at = excluded.accessed_at`
	deleteSQL = `DELETE FROM entries WHERE key = ?`
	touchSQL  = `UPDATE entries SET accessed_at = ?1 WHERE key = ?2 AND accessed_at < ?1`
	evictSQL  = `DELETE FROM entries WHERE rowid IN (SELECT rowid FROM entries ORDER BY accessed_at, rowid LIMIT ?)`
	totalsSQL = `SELECT (SELECT value FROM meta WHERE name = 'bytes'), (SELECT value FROM meta WHERE name = 'entries')`
)

var (
	// errDiskOff is returned by disk operations once the tier has failed.
	errDiskOff = errors.New("cache: disk tier is off")
)

// diskTier is the SQLite tier. It is safe for concurrent use. Writes from
// this process are serialised by writeSem so that SQLite's busy handler only
// arbitrates between processes; reads run on a bounded connection pool.
type diskTier struct {
	path                                 string
	db                                   *sql.DB
	getStmt, setStmt, delStmt, touchStmt *sql.Stmt
	busyTimeout                          time.Duration
	maxBytes                             int64 // 0: no limit
	checkEvery                           int64 // bytes written between eviction checks
	version                              int

	writeSem chan struct{}

	// life is read-held by every operation and write-held by close, so the
	// database is never closed under a running statement.
	life   sync.RWMutex
	closed bool

	sinceCheck atomic.Int64
	evictDue   atomic.Bool
	evictions  atomic.Int64

	touchMu sync.Mutex
	touches map[string]int64 // key → access time (Unix ms) not yet written

	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}

	failed    atomic.Bool
	errMu     sync.Mutex
	err       string
	onFailure func(error) // Options.OnDiskFailure
}

// openDisk opens or creates the cache file at path (absolute) and starts the
// tier's worker. Its errors describe the problem without naming the path.
func openDisk(ctx context.Context, path string, opts Options) (*diskTier, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch fi, err := os.Stat(path); {
	case err == nil && fi.IsDir():
		return nil, errors.New("is a directory")
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create directory: %w", err)
		}
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err // the caller names the path
		}
		return nil, err
	}
	if err := sqlitedb.PrivateFile(path); err != nil {
		return nil, err
	}
	db := sqlitedb.Open(path, sqlitedb.Options{BusyTimeout: opts.BusyTimeout, IncrementalVacuum: true, WALSizeLimit: walSizeLimit})
	conns := max(4, runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	d := &diskTier{
		path:        path,
		db:          db,
		busyTimeout: opts.BusyTimeout,
		onFailure:   opts.OnDiskFailure,
		writeSem:    make(chan struct{}, 1),
		touches:     make(map[string]int64),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	if opts.MaxDiskBytes > 0 {
		d.maxBytes = opts.MaxDiskBytes
		d.checkEvery = max(1, opts.MaxDiskBytes/100)
	}
	if err := d.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{{&d.getStmt, getSQL}, {&d.setStmt, setSQL}, {&d.delStmt, deleteSQL}, {&d.touchStmt, touchSQL}} {
		var err error
		if *p.stmt, err = db.PrepareContext(ctx, p.sql); err != nil {
			db.Close()
			return nil, fmt.Errorf("prepare statement: %w", err)
		}
	}
	// Check the size once at start: the file may have been filled under a
	// larger limit.
	d.evictDue.Store(d.maxBytes > 0)
	wctx, stop := context.WithCancel(context.Background())
	d.stop = stop
	go d.run(wctx)
	return d, nil
}

// init prepares the file, retrying while another process holds it: SQLite
// answers some lock conflicts while the journal mode changes (two processes
// creating the file at once) with an immediate "database is locked" that
// its busy handler does not wait out.
func (d *diskTier) init(ctx context.Context) error {
	deadline := time.Now().Add(d.busyTimeout)
	for {
		err := d.initOnce(ctx)
		if err == nil || !sqlitedb.Busy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// initOnce checks the schema version, creating the schema in a new file. It
// only writes when the file is new.
func (d *diskTier) initOnce(ctx context.Context) error {
	if err := d.db.PingContext(ctx); err != nil {
		return err
	}
	version, found, err := readVersion(ctx, d.db)
	if err != nil {
		return err
	}
	// WAL lets readers and a writer in several processes share the file.
	// The mode is stored in the file, so it is set once here, after the file
	// is known to be ours or new, rather than on every connection.
	var mode string
	if err := d.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		if _, err := d.db.ExecContext(ctx, `PRAGMA journal_mode = WAL`); err != nil {
			return err
		}
	}
	if !found {
		if version, err = d.create(ctx); err != nil {
			return err
		}
	}
	if version > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this program supports (%d)", version, SchemaVersion)
	}
	d.version = version
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readVersion reads the schema version; found is false for a file without a
// meta table. A file holding other tables is refused, so that a mistyped
// path does not turn some other database into a cache.
func readVersion(ctx context.Context, q querier) (version int, found bool, err error) {
	var hasMeta, tables int
	err = q.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE name = 'meta'), count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&hasMeta, &tables)
	if err != nil {
		return 0, false, err
	}
	if hasMeta == 0 {
		if tables > 0 {
			return 0, false, errors.New("database holds other tables; not a dspex cache")
		}
		return 0, false, nil
	}
	err = q.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'schema_version'`).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, errors.New("no schema version; not a dspex cache")
	}
	if err != nil {
		return 0, false, err
	}
	return version, true, nil
}

// create makes the schema in one transaction; another process may have done
// so first, in which case its version is returned.
func (d *diskTier) create(ctx context.Context) (int, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	version, found, err := readVersion(ctx, tx)
	if err != nil {
		return 0, err
	}
	if found {
		return version, nil
	}
	for _, s := range schema {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return 0, fmt.Errorf("create schema: %w", err)
		}
	}
	return SchemaVersion, tx.Commit()
}

// enter read-locks the tier for one operation; it returns an error (and
// holds no lock) when the tier is closed or off.
func (d *diskTier) enter() error {
	d.life.RLock()
	if d.closed {
		d.life.RUnlock()
		return ErrClosed
	}
	if d.failed.Load() {
		d.life.RUnlock()
		return errDiskOff
	}
	return nil
}

func (d *diskTier) lockWrite(ctx context.Context) error {
	select {
	case d.writeSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *diskTier) unlockWrite() { <-d.writeSem }

// note turns the tier off when err is a fault of the file rather than a
// transient condition, and returns err.
func (d *diskTier) note(err error) error {
	if err != nil && !transient(err) {
		d.fail(err)
	}
	return err
}

// transient reports errors that say nothing about the file's health: the
// caller gave up, another process held the lock too long, one value was too
// big, or the tier is already closed or off.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrClosed) || errors.Is(err, errDiskOff) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrInterrupt, sqlite3.ErrTooBig:
			return true
		}
	}
	return false
}

// fail turns the tier off, recording why, and tells Options.OnDiskFailure
// the first time.
func (d *diskTier) fail(err error) {
	d.errMu.Lock()
	if d.failed.Load() {
		d.errMu.Unlock()
		return
	}
	d.err = fmt.Sprintf("%s: %v", d.path, err)
	d.failed.Store(true)
	d.errMu.Unlock()
	if d.onFailure != nil {
		d.onFailure(fmt.Errorf("%w: %s: %w; going on from memory", ErrDiskUnavailable, d.path, err))
	}
}

// problem is why the tier is off, or "".
func (d *diskTier) problem() string {
	if !d.failed.Load() {
		return ""
	}
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.err
}

func (d *diskTier) get(ctx context.Context, key string) (value []byte, accessed int64, ok bool, err error) {
	if err := d.enter(); err != nil {
		return nil, 0, false, err
	}
	defer d.life.RUnlock()
	err = d.getStmt.QueryRowContext(ctx, key).Scan(&value, &accessed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, d.note(err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, accessed, true, nil
}

func (d *diskTier) set(ctx context.Context, key string, value []byte, now int64) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	if err := d.lockWrite(ctx); err != nil {
		return err
	}
	size := entrySize(key, value)
	_, err := d.setStmt.ExecContext(ctx, key, value, size, now, now)
	d.unlockWrite()
	if err != nil {
		return d.note(err)
	}
	if d.maxBytes > 0 && d.sinceCheck.Add(size) >= d.checkEvery {
		d.sinceCheck.Store(0)
		d.evictDue.Store(true)
		d.kick()
	}
	return nil
}

func (d *diskTier) delete(ctx context.Context, key string) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	if err := d.lockWrite(ctx); err != nil {
		return err
	}
	defer d.unlockWrite()
	_, err := d.delStmt.ExecContext(ctx, key)
	return d.note(err)
}

// clear deletes every row and returns how many there were.
func (d *diskTier) clear(ctx context.Context) (int64, error) {
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.life.RUnlock()
	if err := d.lockWrite(ctx); err != nil {
		return 0, err
	}
	defer d.unlockWrite()
	d.touchMu.Lock()
	clear(d.touches)
	d.touchMu.Unlock()
	res, err := d.db.ExecContext(ctx, `DELETE FROM entries`)
	if err != nil {
		return 0, d.note(err)
	}
	n, _ := res.RowsAffected()
	d.vacuum(ctx)
	return n, nil
}

// vacuum hands free pages back to the file system (on files created with
// auto_vacuum; a no-op on others). It is best effort: a failure leaves free
// pages that later writes reuse. The pragma frees one page per step, so its
// rows are read to the end.
func (d *diskTier) vacuum(ctx context.Context) {
	rows, err := d.db.QueryContext(ctx, `PRAGMA incremental_vacuum`)
	if err != nil {
		return
	}
	for rows.Next() {
	}
	rows.Close()
}

// diskStats is what the file says about itself.
type diskStats struct {
	entries, bytes, fileBytes int64
}

func (d *diskTier) stats(ctx context.Context) (diskStats, error) {
	if err := d.enter(); err != nil {
		return diskStats{}, err
	}
	defer d.life.RUnlock()
	var s diskStats
	if err := d.db.QueryRowContext(ctx, totalsSQL).Scan(&s.bytes, &s.entries); err != nil {
		return diskStats{}, d.note(err)
	}
	for _, p := range []string{d.path, d.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			s.fileBytes += fi.Size()
		}
	}
	return s, nil
}

// verify runs SQLite's quick_check and returns its complaints, if any.
func (d *diskTier) verify(ctx context.Context) ([]string, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.life.RUnlock()
	rows, err := d.db.QueryContext(ctx, `PRAGMA quick_check(10)`)
	if err != nil {
		return nil, d.note(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, d.note(err)
		}
		if line != "ok" {
			problems = append(problems, strings.ReplaceAll(line, "\n", "; "))
		}
	}
	return problems, d.note(rows.Err())
}

// touch records that key was read at now (Unix ms), to be written by the
// worker. When too many are pending the access is dropped: access times only
// steer eviction.
func (d *diskTier) touch(key string, now int64) {
	d.touchMu.Lock()
	if len(d.touches) >= maxPendingTouches {
		d.touchMu.Unlock()
		d.kick()
		return
	}
	d.touches[key] = now
	n := len(d.touches)
	d.touchMu.Unlock()
	if n >= touchBatch {
		d.kick()
	}
}

func (d *diskTier) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run is the worker: it writes access times and evicts when due, until ctx
// is cancelled, then writes what is pending one last time.
func (d *diskTier) run(ctx context.Context) {
	defer close(d.done)
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), d.busyTimeout)
			_ = d.flush(fctx)
			cancel()
			return
		case <-tick.C:
		case <-d.wake:
		}
		_ = d.maintain(ctx, false)
	}
}

// maintain writes pending access times, then evicts if a check is due (or
// force is set).
func (d *diskTier) maintain(ctx context.Context, force bool) error {
	if err := d.flush(ctx); err != nil {
		return err
	}
	if d.evictDue.Swap(false) || force {
		if err := d.evict(ctx); err != nil {
			d.evictDue.Store(true)
			return err
		}
	}
	return nil
}

// flush writes pending access times in one transaction.
func (d *diskTier) flush(ctx context.Context) error {
	d.touchMu.Lock()
	if len(d.touches) == 0 {
		d.touchMu.Unlock()
		return nil
	}
	pending := d.touches
	d.touches = make(map[string]int64, len(pending))
	d.touchMu.Unlock()

	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	if err := d.lockWrite(ctx); err != nil {
		return err
	}
	defer d.unlockWrite()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return d.note(err)
	}
	defer tx.Rollback()
	stmt := tx.StmtContext(ctx, d.touchStmt)
	for key, at := range pending {
		if _, err := stmt.ExecContext(ctx, at, key); err != nil {
			return d.note(err)
		}
	}
	return d.note(tx.Commit())
}

// evict deletes the least recently accessed rows while the payload is over
// the limit, down to 90% of it. Each round is its own transaction, which
// rereads the totals, so processes evicting at once do not overshoot much.
func (d *diskTier) evict(ctx context.Context) error {
	if d.maxBytes <= 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	target := d.maxBytes / 10 * 9
	for round := range evictRoundsMax {
		done, err := d.evictRound(ctx, round == 0, target)
		if err != nil || done {
			return err
		}
	}
	return nil
}

func (d *diskTier) evictRound(ctx context.Context, first bool, target int64) (done bool, err error) {
	if err := d.lockWrite(ctx); err != nil {
		return false, err
	}
	defer d.unlockWrite()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return false, d.note(err)
	}
	defer tx.Rollback()
	var total, count int64
	if err := tx.QueryRowContext(ctx, totalsSQL).Scan(&total, &count); err != nil {
		return false, d.note(err)
	}
	if (first && total <= d.maxBytes) || total <= target || count == 0 {
		return true, nil
	}
	avg := max(1, total/count)
	n := min(evictBatchMax, max(1, (total-target+avg-1)/avg))
	res, err := tx.ExecContext(ctx, evictSQL, n)
	if err != nil {
		return false, d.note(err)
	}
	deleted, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return false, d.note(err)
	}
	d.evictions.Add(deleted)
	return deleted == 0, nil
}

// close stops the worker, waits for it, and closes the database.
func (d *diskTier) close() error {
	d.stop()
	<-d.done
	d.life.Lock()
	defer d.life.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for _, s := range []*sql.Stmt{d.getStmt, d.setStmt, d.delStmt, d.touchStmt} {
		s.Close()
	}
	return d.db.Close()
}
