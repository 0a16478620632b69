package trace

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// retentionBatch bounds the runs one retention transaction deletes, so
// that a first pass over a large file does not hold the write lock for
// long; retentionRounds bounds the transactions of one pass.
const (
	retentionBatch  = 200
	retentionRounds = 100
)

// runTables are the tables whose rows belong to a run, with the column
// giving each row's time (for rows outside any run).
var runTables = []struct{ name, timeColumn string }{
	{"spans", "coalesce(ended_at, started_at)"},
	{"lm_calls", "created_at"},
	{"events", "time"},
	{"eval_results", "created_at"},
	{"optimizer_trials", "created_at"},
}

// applyRetention deletes the runs r does not keep, with their rows, and
// returns how many runs it deleted.
func applyRetention(ctx context.Context, db *sql.DB, r Retention, now time.Time) (int, error) {
	var (
		cutoff = int64(-1 << 63) // MaxAge: rows last written before this go
		keep   = -1              // MaxRuns: the newest this many stay
		active = now.Add(-activeGrace).UnixNano()
	)
	if r.MaxAge > 0 {
		cutoff = now.Add(-r.MaxAge).UnixNano()
	}
	if r.MaxRuns > 0 {
		keep = r.MaxRuns
	}
	deleted := 0
	for range retentionRounds {
		n, err := retentionRound(ctx, db, cutoff, keep, active)
		deleted += n
		if err != nil || n < retentionBatch {
			if err == nil && r.MaxAge > 0 {
				err = deleteOrphans(ctx, db, cutoff)
			}
			if err == nil && r.MaxAge > 0 {
				err = trimRunning(ctx, db, cutoff)
			}
			if err == nil && deleted > 0 {
				// Hand freed pages back (on files created with auto_vacuum;
				// elsewhere later writes reuse them). Best effort.
				_, _ = db.ExecContext(ctx, `PRAGMA incremental_vacuum`)
			}
			return deleted, err
		}
	}
	return deleted, nil
}

func retentionRound(ctx context.Context, db *sql.DB, cutoff int64, keep int, active int64) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	// A run goes when it is older than MaxAge, or when it is not among the
	// newest MaxRuns and is not a run still being written.
	rows, err := tx.QueryContext(ctx, `SELECT id FROM runs
		WHERE updated_at < ?1
		   OR (?2 >= 0 AND id NOT IN (SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT ?2)
		       AND NOT (status = 'running' AND updated_at >= ?3))
		LIMIT ?4`, cutoff, keep, active, retentionBatch)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	// Next stops at an error too: Err tells it from the end of the rows.
	err = rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	list, _ := json.Marshal(ids)
	for _, t := range runTables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t.name+` WHERE run_id IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
			return 0, err
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
		return 0, err
	}
	return len(ids), tx.Commit()
}

// deleteOrphans deletes rows outside any run written before cutoff.
func deleteOrphans(ctx context.Context, db *sql.DB, cutoff int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, t := range runTables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t.name+` WHERE run_id = '' AND `+t.timeColumn+` < ?`, cutoff); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// trimRunning deletes the rows written before cutoff of runs still
// running: a server that runs for weeks is one run, which MaxAge would
// otherwise never reach.
func trimRunning(ctx context.Context, db *sql.DB, cutoff int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, t := range runTables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t.name+` WHERE `+t.timeColumn+` < ?
			AND run_id IN (SELECT id FROM runs WHERE status = 'running')`, cutoff); err != nil {
			return err
		}
	}
	return tx.Commit()
}
