package trace

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dspex/dspex/core/internal/sqlitedb"
)

// SchemaVersion is the version of the schema this package writes. Open
// migrates older files to it and refuses newer ones.
const SchemaVersion = 4

// walSizeLimit is the size the write-ahead log is truncated to after a
// checkpoint.
const walSizeLimit = 64 << 20

// migrations[v-1] takes a file from schema version v-1 to v. Each runs in
// one transaction that also records the new version, so a file is always at
// exactly one version. Migrations are never edited once released: a change
// is a new migration.
var migrations = [][]string{
	// 1: runs, spans and LM calls.
	{
		`CREATE TABLE trace_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID`,
		`INSERT INTO trace_meta (name, value) VALUES ('schema_version', 0)`,
		`CREATE TABLE runs (
			id TEXT PRIMARY KEY,
			name TEXT NOT NULL DEFAULT '',
			program TEXT NOT NULL DEFAULT '',
			meta TEXT,
			started_at INTEGER NOT NULL,
			start_seen INTEGER NOT NULL DEFAULT 0,
			ended_at INTEGER,
			updated_at INTEGER NOT NULL,
			status TEXT NOT NULL DEFAULT 'running',
			error TEXT NOT NULL DEFAULT '',
			calls INTEGER NOT NULL DEFAULT 0,
			cache_hits INTEGER NOT NULL DEFAULT 0,
			prompt_tokens INTEGER NOT NULL DEFAULT 0,
			completion_tokens INTEGER NOT NULL DEFAULT 0,
			cost_usd REAL NOT NULL DEFAULT 0,
			cost_unknown_calls INTEGER NOT NULL DEFAULT 0
		)`,
		`CREATE INDEX runs_started_at ON runs (started_at)`,
		`CREATE TABLE spans (
			id TEXT PRIMARY KEY,
			run_id TEXT NOT NULL,
			parent_id TEXT NOT NULL DEFAULT '',
			kind TEXT NOT NULL,
			name TEXT NOT NULL DEFAULT '',
			signature TEXT NOT NULL DEFAULT '',
			inputs TEXT,
			outputs TEXT,
			error TEXT NOT NULL DEFAULT '',
			started_at INTEGER,
			ended_at INTEGER,
			duration_ns INTEGER
		)`,
		`CREATE INDEX spans_run ON spans (run_id, started_at)`,
		`CREATE TABLE lm_calls (
			span_id TEXT PRIMARY KEY,
			run_id TEXT NOT NULL,
			model TEXT NOT NULL DEFAULT '',
			adapter TEXT NOT NULL DEFAULT '',
			messages TEXT,
			params TEXT,
			completions TEXT,
			prompt_tokens INTEGER,
			completion_tokens INTEGER,
			total_tokens INTEGER,
			cost_usd REAL,
			cost_known INTEGER,
			latency_ms REAL,
			queue_wait_ms REAL,
			cache_hit INTEGER,
			attempts INTEGER,
			error TEXT,
			error_kind TEXT,
			created_at INTEGER NOT NULL,
			ended_at INTEGER
		)`,
		`CREATE INDEX lm_calls_run ON lm_calls (run_id, created_at)`,
		`CREATE INDEX lm_calls_created_at ON lm_calls (created_at)`,
	},
	// 2: other events, evaluation results and optimizer trials.
	{
		`CREATE TABLE events (
			id INTEGER PRIMARY KEY,
			run_id TEXT NOT NULL,
			span_id TEXT NOT NULL DEFAULT '',
			parent_id TEXT NOT NULL DEFAULT '',
			kind TEXT NOT NULL,
			time INTEGER NOT NULL,
			data TEXT
		)`,
		`CREATE INDEX events_run ON events (run_id, time)`,
		`CREATE TABLE eval_results (
			id INTEGER PRIMARY KEY,
			run_id TEXT NOT NULL,
			span_id TEXT NOT NULL DEFAULT '',
			parent_id TEXT NOT NULL DEFAULT '',
			example_index INTEGER NOT NULL,
			example TEXT,
			prediction TEXT,
			score REAL NOT NULL,
			feedback TEXT NOT NULL DEFAULT '',
			error TEXT NOT NULL DEFAULT '',
			duration_ns INTEGER,
			created_at INTEGER NOT NULL
		)`,
		`CREATE INDEX eval_results_run ON eval_results (run_id, example_index)`,
		`CREATE TABLE optimizer_trials (
			id INTEGER PRIMARY KEY,
			run_id TEXT NOT NULL,
			span_id TEXT NOT NULL DEFAULT '',
			parent_id TEXT NOT NULL DEFAULT '',
			kind TEXT NOT NULL,
			optimizer TEXT NOT NULL DEFAULT '',
			trial INTEGER NOT NULL,
			candidate TEXT,
			score REAL,
			best_score REAL,
			minibatch INTEGER NOT NULL DEFAULT 0,
			created_at INTEGER NOT NULL
		)`,
		`CREATE INDEX optimizer_trials_run ON optimizer_trials (run_id, created_at)`,
	},
	// 3: each LM call's finish reasons (a JSON array, one per choice), so
	// that answers cut off by max_tokens show in traces.
	{
		`ALTER TABLE lm_calls ADD COLUMN finish_reasons TEXT`,
	},
	// 4: the process writing each run (its pid and host) and that
	// process's last sign of life, so that readers can tell a run whose
	// process died from one still running.
	{
		`ALTER TABLE runs ADD COLUMN pid INTEGER`,
		`ALTER TABLE runs ADD COLUMN host TEXT`,
		`ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER`,
	},
}

var (
	// ErrNoDatabase is wrapped by OpenReader's error when there is no file.
	ErrNoDatabase = errors.New("trace: no database")
	// ErrNotTraceDB is wrapped by errors about an SQLite file that holds
	// other tables: a mistyped path never turns some other database into a
	// trace store.
	ErrNotTraceDB = errors.New("trace: not a dspex trace database")
	// ErrNewerSchema is matched (errors.Is) by a *VersionError.
	ErrNewerSchema = errors.New("trace: database schema is newer than this dspex")
)

// VersionError reports a file written by a newer dspex, whose schema this
// one does not know. It matches ErrNewerSchema.
type VersionError struct {
	Path      string
	Version   int // the file's schema version
	Supported int // SchemaVersion
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("trace: database %s has schema version %d, newer than this dspex (%d); upgrade dspex",
		e.Path, e.Version, e.Supported)
}

// Is makes errors.Is(err, ErrNewerSchema) true.
func (e *VersionError) Is(target error) bool { return target == ErrNewerSchema }

// DefaultPath is the trace database dspex uses when none is named: $DSPEX_DB
// if set, else $XDG_STATE_HOME/dspex/traces.db, else
// ~/.local/state/dspex/traces.db.
func DefaultPath() (string, error) {
	if p := os.Getenv("DSPEX_DB"); p != "" {
		return p, nil
	}
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "dspex", "traces.db"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("trace: default path: %w", err)
	}
	return filepath.Join(home, ".local", "state", "dspex", "traces.db"), nil
}

// openDB opens path (absolute) for the trace store or, readOnly, for a
// Reader, which never creates the file.
func openDB(path string, busy time.Duration, readOnly bool) *sql.DB {
	return sqlitedb.Open(path, sqlitedb.Options{BusyTimeout: busy, ReadOnly: readOnly, WALSizeLimit: walSizeLimit})
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// foreignError says why a file is not a trace database; describe adds the
// path and ErrNotTraceDB.
type foreignError string

func (e foreignError) Error() string { return string(e) }

// readVersion reads the schema version: 0 for an empty file. A file holding
// other tables is refused with a foreignError naming what it holds.
func readVersion(ctx context.Context, q querier) (int, error) {
	var hasMeta, tables int
	err := q.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE name = 'trace_meta'), count(*)
		FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).Scan(&hasMeta, &tables)
	if err != nil {
		return 0, err
	}
	if hasMeta == 0 {
		if tables == 0 {
			return 0, nil
		}
		var names string
		err := q.QueryRowContext(ctx, `SELECT group_concat(name, ', ') FROM (SELECT name FROM sqlite_master
			WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name LIMIT 5)`).Scan(&names)
		if err != nil {
			return 0, err
		}
		if tables > 5 {
			names += ", ..."
		}
		return 0, foreignError("holds other tables (" + names + ")")
	}
	var version int
	err = q.QueryRowContext(ctx, `SELECT value FROM trace_meta WHERE name = 'schema_version'`).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, foreignError("has no schema version")
	}
	return version, err
}

// migrate brings the file from its version up to target, one migration per
// transaction. Each transaction rereads the version under the write lock,
// so processes opening one file at once apply each migration once.
func migrate(ctx context.Context, db *sql.DB, target int) error {
	for {
		done, err := migrateStep(ctx, db, target)
		if err != nil || done {
			return err
		}
	}
}

func migrateStep(ctx context.Context, db *sql.DB, target int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	version, err := readVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	if version >= target {
		return true, nil
	}
	for _, s := range migrations[version] {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return false, fmt.Errorf("migrate to schema version %d: %w", version+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE trace_meta SET value = ? WHERE name = 'schema_version'`, version+1); err != nil {
		return false, fmt.Errorf("migrate to schema version %d: %w", version+1, err)
	}
	return false, tx.Commit()
}

// busy reports SQLite lock conflicts that are worth retrying.
func busy(err error) bool { return sqlitedb.Busy(err) }

// retryBusy runs f until it succeeds, fails with something other than a
// lock conflict, or timeout passes: SQLite answers some conflicts (two
// processes switching a new file to WAL at once) with an immediate "database
// is locked" that its busy handler does not wait out.
func retryBusy(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || !busy(err) || time.Now().After(deadline) {
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

// prepare checks and migrates the file behind db, switching it to WAL
// first. Nothing is written to a file that turns out to be foreign or newer.
func prepare(ctx context.Context, db *sql.DB, path string) error {
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	version, err := readVersion(ctx, db)
	if err != nil {
		return err
	}
	if version > SchemaVersion {
		return &VersionError{Path: path, Version: version, Supported: SchemaVersion}
	}
	if version == 0 {
		// Lets retention hand pages back to the file system. It only takes
		// effect before the file's first table, and it is set here rather
		// than in the DSN because setting it on a file that has tables
		// writes to it — and a foreign file must not be touched.
		if _, err := db.ExecContext(ctx, `PRAGMA auto_vacuum = INCREMENTAL`); err != nil {
			return err
		}
	}
	// WAL lets readers in other processes see committed batches while the
	// writer goes on. The mode is stored in the file, so it is set once.
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		if err := db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode); err != nil {
			return err
		}
		if mode != "wal" {
			return fmt.Errorf("cannot switch to WAL mode (still %s)", mode)
		}
	}
	if err := migrate(ctx, db, SchemaVersion); err != nil {
		return err
	}
	// Another process may have migrated past us in between.
	if version, err = readVersion(ctx, db); err != nil {
		return err
	}
	if version > SchemaVersion {
		return &VersionError{Path: path, Version: version, Supported: SchemaVersion}
	}
	return nil
}

// describe wraps an error from opening path so that it names the file,
// leaving a *VersionError (which already does) alone.
func describe(path string, err error) error {
	var ve *VersionError
	var fe foreignError
	switch {
	case errors.As(err, &ve):
		return err
	case errors.As(err, &fe):
		return fmt.Errorf("%w: %s %s", ErrNotTraceDB, path, fe)
	}
	return fmt.Errorf("trace: open database %s: %w", path, err)
}
