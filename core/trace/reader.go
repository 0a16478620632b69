package trace

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dspex/dspex/core/event"
)

var (
	// ErrNotFound is returned for a run id (or prefix) that matches no run.
	ErrNotFound = errors.New("trace: run not found")
	// ErrAmbiguous is returned for a run id prefix matching several runs.
	ErrAmbiguous = errors.New("trace: ambiguous run id prefix")
)

// DefaultLimit is how many rows a query returns when its Limit is 0.
const DefaultLimit = 100

// Reader reads a trace database, read-only. It sees every batch a writer
// (in this process or another) has committed, and never blocks one. Its
// methods are safe for concurrent use.
type Reader struct {
	path    string
	db      *sql.DB
	version int
}

// OpenReader opens the trace database at path read-only. A missing file is
// an error wrapping ErrNoDatabase; a foreign or newer file is refused as by
// Open. A file older than SchemaVersion is read as it is (tables it lacks
// read as empty).
func OpenReader(ctx context.Context, path string) (*Reader, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	switch fi, err := os.Stat(path); {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w at %s", ErrNoDatabase, path)
	case err != nil:
		return nil, describe(path, err)
	case fi.IsDir():
		return nil, describe(path, errors.New("is a directory"))
	}
	db := openDB(path, DefaultBusyTimeout, true)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	r := &Reader{path: path, db: db}
	err := retryBusy(ctx, DefaultBusyTimeout, func() error {
		var err error
		r.version, err = readVersion(ctx, db)
		return err
	})
	if err == nil && r.version > SchemaVersion {
		err = &VersionError{Path: path, Version: r.version, Supported: SchemaVersion}
	}
	if err != nil {
		db.Close()
		return nil, describe(path, err)
	}
	return r, nil
}

// Path is the database file (absolute).
func (r *Reader) Path() string { return r.path }

// SchemaVersion is the file's schema version (0 for an empty file).
func (r *Reader) SchemaVersion() int { return r.version }

// Close closes the reader.
func (r *Reader) Close() error { return r.db.Close() }

// Check runs SQLite's integrity check and returns an error listing what it
// found wrong, nil for a sound file.
func (r *Reader) Check(ctx context.Context) error {
	rows, err := r.db.QueryContext(ctx, `PRAGMA integrity_check(10)`)
	if err != nil {
		return r.fail("check", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return r.fail("check", err)
		}
		if line != "ok" {
			problems = append(problems, strings.ReplaceAll(line, "\n", "; "))
		}
	}
	if err := rows.Err(); err != nil {
		return r.fail("check", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("trace: database %s is damaged: %s", r.path, strings.Join(problems, "; "))
	}
	return nil
}

func (r *Reader) fail(what string, err error) error {
	return fmt.Errorf("trace: %s %s: %w", what, r.path, err)
}

// Totals are a run's LM usage.
type Totals struct {
	Calls            int     `json:"calls"`
	CacheHits        int     `json:"cache_hits"`
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	// CostUnknownCalls counts calls whose price was unknown (not in CostUSD).
	CostUnknownCalls int `json:"cost_unknown_calls"`
}

// Run is one run's row, with counts of what the file holds for it.
type Run struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Program string          `json:"program,omitempty"`
	Meta    json.RawMessage `json:"meta,omitempty"`
	// StartedAt is the run's start, or its earliest stored event when its
	// start was not seen.
	StartedAt time.Time `json:"started_at"`
	// EndedAt is zero while the run is running (or when its writer died).
	EndedAt time.Time `json:"ended_at,omitzero"`
	// UpdatedAt is the time of the run's latest stored event.
	UpdatedAt time.Time `json:"updated_at"`
	// Status is "running" until the run's end is stored, then "ok" or
	// "error".
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Reported are the totals the run reported at its end (zero before).
	Reported Totals `json:"reported"`
	// Recorded are the totals of the LM calls stored for the run.
	Recorded Totals `json:"recorded"`
	// Spans counts the run's spans.
	Spans int `json:"spans"`
	// Pid and Host name the process that last wrote the run's events, and
	// HeartbeatAt is that process's last sign of life (zero in files
	// older than schema version 4). See State.
	Pid         int       `json:"pid,omitempty"`
	Host        string    `json:"host,omitempty"`
	HeartbeatAt time.Time `json:"heartbeat_at,omitzero"`
}

// Run states beyond the stored Status ("running", "ok", "error").
const (
	// StateDied is a run whose end was never stored and whose process is
	// gone: killed, crashed, or cut off from its trace file.
	StateDied = "died"
)

// DeadAfter is how old a running run's heartbeat may get before State
// takes its process for dead, on whatever host it runs. Stores beat every
// DefaultHeartbeatInterval.
const DeadAfter = 15 * time.Second

// State is the run's status as of now: its stored Status, except that a
// run still "running" whose process is gone is StateDied. The process is
// gone when it runs on this host and no process has its pid, or when its
// heartbeat is older than DeadAfter (a pid reused by another process, a
// host that stopped). A run from a file older than schema version 4 has
// no heartbeat: it counts as died once it has written nothing for 10
// minutes.
func (r Run) State(now time.Time) string {
	if r.Status != "running" {
		return r.Status
	}
	if r.HeartbeatAt.IsZero() {
		if now.Sub(r.UpdatedAt) > activeGrace {
			return StateDied
		}
		return r.Status
	}
	if now.Sub(r.HeartbeatAt) > DeadAfter {
		return StateDied
	}
	if r.Pid > 0 && r.Host != "" && r.Host == hostName() && !processAlive(r.Pid) {
		return StateDied
	}
	return r.Status
}

// Duration is the run's length; for a run not ended, the time up to its
// latest event.
func (r Run) Duration() time.Duration {
	if !r.EndedAt.IsZero() {
		return r.EndedAt.Sub(r.StartedAt)
	}
	return r.UpdatedAt.Sub(r.StartedAt)
}

// Usage is the run's best known totals: what it reported at its end when it
// reported any calls, else what was recorded.
func (r Run) Usage() Totals {
	if r.Status != "running" && r.Reported.Calls > 0 {
		return r.Reported
	}
	return r.Recorded
}

// ListOptions select runs.
type ListOptions struct {
	// Limit bounds the runs returned. 0: DefaultLimit; negative: no bound.
	Limit int
	// Name keeps only runs of this name ("run", "eval"...); "" keeps all.
	Name string
}

func limit(n int) int {
	switch {
	case n == 0:
		return DefaultLimit
	case n < 0:
		return -1
	}
	return n
}

// runSQL selects runs and their counts; the first %s is the WHERE, ORDER and
// LIMIT choosing them, the second the process columns (see runQuery).
const runSQL = `WITH page AS (SELECT * FROM runs %s)
	SELECT p.id, p.name, p.program, p.meta, p.started_at, p.ended_at, p.updated_at, p.status, p.error,
		p.calls, p.cache_hits, p.prompt_tokens, p.completion_tokens, p.cost_usd, p.cost_unknown_calls,
		coalesce(l.calls, 0), coalesce(l.hits, 0), coalesce(l.prompt, 0), coalesce(l.completion, 0),
		coalesce(l.cost, 0), coalesce(l.unknown, 0),
		(SELECT count(*) FROM spans s WHERE s.run_id = p.id), %s
	FROM page p LEFT JOIN (
		SELECT run_id, count(*) AS calls, sum(cache_hit) AS hits, sum(prompt_tokens) AS prompt,
			sum(completion_tokens) AS completion, sum(cost_usd) AS cost,
			sum(ended_at IS NOT NULL AND NOT cost_known AND NOT cache_hit AND coalesce(error, '') = '') AS unknown
		FROM lm_calls WHERE run_id IN (SELECT id FROM page) GROUP BY run_id
	) l ON l.run_id = p.id
	ORDER BY p.started_at DESC, p.id DESC`

// runQuery is runSQL choosing runs by where; files older than schema
// version 4 have no process columns.
func (r *Reader) runQuery(where string) string {
	process := "p.pid, p.host, p.heartbeat_at"
	if r.version < 4 {
		process = "NULL, NULL, NULL"
	}
	return fmt.Sprintf(runSQL, where, process)
}

// Runs returns runs, newest first.
func (r *Reader) Runs(ctx context.Context, opts ListOptions) ([]Run, error) {
	if r.version < 1 {
		return nil, nil
	}
	where := `WHERE ?1 = '' OR name = ?1 ORDER BY started_at DESC, id DESC LIMIT ?2`
	runs, err := r.queryRuns(ctx, r.runQuery(where), opts.Name, limit(opts.Limit))
	if err != nil {
		return nil, r.fail("list runs in", err)
	}
	return runs, nil
}

// Run returns the run whose id is id or, failing that, starts with id. A
// prefix of several runs' ids is an error wrapping ErrAmbiguous; no match,
// ErrNotFound.
func (r *Reader) Run(ctx context.Context, id string) (Run, error) {
	if id == "" {
		return Run{}, fmt.Errorf("%w: empty run id", ErrNotFound)
	}
	if r.version < 1 {
		return Run{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	// An exact match wins; the prefix scan uses the primary key's index.
	where := `WHERE id = ?1 OR (id > ?1 AND substr(id, 1, length(?1)) = ?1)
		ORDER BY id = ?1 DESC, id LIMIT 3`
	runs, err := r.queryRuns(ctx, r.runQuery(where), id)
	if err != nil {
		return Run{}, r.fail("read run in", err)
	}
	for _, run := range runs {
		if run.ID == id {
			return run, nil
		}
	}
	switch len(runs) {
	case 0:
		return Run{}, fmt.Errorf("%w: no run %q in %s", ErrNotFound, id, r.path)
	case 1:
		return runs[0], nil
	}
	ids := make([]string, 0, len(runs))
	for _, run := range runs {
		ids = append(ids, run.ID)
	}
	slices.Sort(ids)
	more := ""
	if len(runs) > 2 {
		ids, more = ids[:2], ", ..."
	}
	return Run{}, fmt.Errorf("%w: %q matches %s%s", ErrAmbiguous, id, strings.Join(ids, ", "), more)
}

func (r *Reader) queryRuns(ctx context.Context, query string, args ...any) ([]Run, error) {
	rows, err := r.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		var (
			run                   Run
			meta                  sql.NullString
			started, updated      int64
			ended                 sql.NullInt64
			rep, rec              = &run.Reported, &run.Recorded
			recPrompt, recComplet int64
			pid, beat             sql.NullInt64
			host                  sql.NullString
		)
		if err := rows.Scan(&run.ID, &run.Name, &run.Program, &meta, &started, &ended, &updated, &run.Status, &run.Error,
			&rep.Calls, &rep.CacheHits, &rep.PromptTokens, &rep.CompletionTokens, &rep.CostUSD, &rep.CostUnknownCalls,
			&rec.Calls, &rec.CacheHits, &recPrompt, &recComplet, &rec.CostUSD, &rec.CostUnknownCalls,
			&run.Spans, &pid, &host, &beat); err != nil {
			return nil, err
		}
		run.Pid, run.Host, run.HeartbeatAt = int(pid.Int64), host.String, nullTime(beat)
		rec.PromptTokens, rec.CompletionTokens = int(recPrompt), int(recComplet)
		run.Meta = rawJSON(meta)
		run.StartedAt, run.EndedAt, run.UpdatedAt = fromNS(started), nullTime(ended), fromNS(updated)
		runs = append(runs, run)
	}
	return runs, rows.Err()
}

// Span is a module call or an LM call.
type Span struct {
	ID       string `json:"id"`
	RunID    string `json:"run_id"`
	ParentID string `json:"parent_id,omitempty"`
	// Kind is SpanModule or SpanLM.
	Kind string `json:"kind"`
	// Name is the module's type, or the LM call's model.
	Name      string          `json:"name"`
	Signature string          `json:"signature,omitempty"`
	Inputs    json.RawMessage `json:"inputs,omitempty"`
	Outputs   json.RawMessage `json:"outputs,omitempty"`
	Error     string          `json:"error,omitempty"`
	// StartedAt is zero when neither the span's start nor its duration is
	// known; EndedAt is zero while it runs.
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Duration is the reported duration, else EndedAt - StartedAt (0 while
	// running).
	Duration time.Duration `json:"duration_ns"`
}

// Spans returns a run's spans in start order, each with its parent's id,
// so callers can build the tree. A span whose start was not stored sorts
// by its end.
func (r *Reader) Spans(ctx context.Context, runID string) ([]Span, error) {
	if r.version < 1 {
		return nil, nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT id, run_id, parent_id, kind, name, signature, inputs, outputs, error,
		started_at, ended_at, duration_ns FROM spans WHERE run_id = ?
		ORDER BY coalesce(started_at, ended_at), rowid`, runID)
	if err != nil {
		return nil, r.fail("read spans in", err)
	}
	defer rows.Close()
	var spans []Span
	for rows.Next() {
		var (
			s                        Span
			inputs, outputs          sql.NullString
			started, ended, duration sql.NullInt64
		)
		if err := rows.Scan(&s.ID, &s.RunID, &s.ParentID, &s.Kind, &s.Name, &s.Signature, &inputs, &outputs, &s.Error,
			&started, &ended, &duration); err != nil {
			return nil, r.fail("read spans in", err)
		}
		s.Inputs, s.Outputs = rawJSON(inputs), rawJSON(outputs)
		s.StartedAt, s.EndedAt = nullTime(started), nullTime(ended)
		switch {
		case duration.Valid:
			s.Duration = time.Duration(duration.Int64)
		case started.Valid && ended.Valid:
			s.Duration = time.Duration(ended.Int64 - started.Int64)
		}
		spans = append(spans, s)
	}
	if err := rows.Err(); err != nil {
		return nil, r.fail("read spans in", err)
	}
	return spans, nil
}

// LMCall is one LM call: the request, and once it ended the response.
type LMCall struct {
	SpanID string `json:"span_id"`
	RunID  string `json:"run_id"`
	// ParentID is the span the call was made in (a module call).
	ParentID    string          `json:"parent_id,omitempty"`
	Model       string          `json:"model"`
	Adapter     string          `json:"adapter,omitempty"`
	Messages    []event.Message `json:"messages,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
	Completions []string        `json:"completions,omitempty"`
	// FinishReasons are the choices' finish reasons ("length": cut off at
	// max_tokens); empty in files written before schema version 3.
	FinishReasons []string `json:"finish_reasons,omitempty"`

	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	TotalTokens      int     `json:"total_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	CostKnown        bool    `json:"cost_known"`
	LatencyMS        float64 `json:"latency_ms"`
	QueueWaitMS      float64 `json:"queue_wait_ms"`
	CacheHit         bool    `json:"cache_hit"`
	Attempts         int     `json:"attempts"`
	Error            string  `json:"error,omitempty"`
	ErrorKind        string  `json:"error_kind,omitempty"`

	// CreatedAt is when the call started; EndedAt is zero while it runs.
	CreatedAt time.Time `json:"created_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// Ended reports whether the call's end is stored.
func (c LMCall) Ended() bool { return !c.EndedAt.IsZero() }

// LMCallQuery selects LM calls.
type LMCallQuery struct {
	// RunID keeps one run's calls; "" keeps every run's.
	RunID string
	// Limit bounds the calls returned. 0: DefaultLimit; negative: no bound.
	Limit int
	// SpanID keeps the one call of that span; "" keeps all.
	SpanID string
	// NoContent leaves out the messages, params and completions (for
	// statistics over many calls).
	NoContent bool
}

// LMCalls returns LM calls, newest first.
func (r *Reader) LMCalls(ctx context.Context, q LMCallQuery) ([]LMCall, error) {
	if r.version < 1 {
		return nil, nil
	}
	var conds []string
	args := []any{limit(q.Limit)}
	if q.RunID != "" {
		args = append(args, q.RunID)
		conds = append(conds, fmt.Sprintf("c.run_id = ?%d", len(args)))
	}
	if q.SpanID != "" {
		args = append(args, q.SpanID)
		conds = append(conds, fmt.Sprintf("c.span_id = ?%d", len(args)))
	}
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	finishes := "c.finish_reasons"
	if r.version < 3 {
		finishes = "NULL"
	}
	content := "c.messages, c.params, c.completions"
	if q.NoContent {
		content = "NULL, NULL, NULL"
	}
	rows, err := r.db.QueryContext(ctx, `SELECT c.span_id, c.run_id, coalesce(s.parent_id, ''), c.model, c.adapter,
		`+content+`, `+finishes+`, coalesce(c.prompt_tokens, 0), coalesce(c.completion_tokens, 0),
		coalesce(c.total_tokens, 0), coalesce(c.cost_usd, 0), coalesce(c.cost_known, 0), coalesce(c.latency_ms, 0),
		coalesce(c.queue_wait_ms, 0), coalesce(c.cache_hit, 0), coalesce(c.attempts, 0), coalesce(c.error, ''),
		coalesce(c.error_kind, ''), c.created_at, c.ended_at
		FROM lm_calls c LEFT JOIN spans s ON s.id = c.span_id `+where+`
		ORDER BY c.created_at DESC, c.rowid DESC LIMIT ?1`, args...)
	if err != nil {
		return nil, r.fail("read LM calls in", err)
	}
	defer rows.Close()
	var calls []LMCall
	for rows.Next() {
		var (
			c                                    LMCall
			messages, params, complets, finished sql.NullString
			created                              int64
			ended                                sql.NullInt64
		)
		if err := rows.Scan(&c.SpanID, &c.RunID, &c.ParentID, &c.Model, &c.Adapter, &messages, &params, &complets, &finished,
			&c.PromptTokens, &c.CompletionTokens, &c.TotalTokens, &c.CostUSD, &c.CostKnown, &c.LatencyMS,
			&c.QueueWaitMS, &c.CacheHit, &c.Attempts, &c.Error, &c.ErrorKind, &created, &ended); err != nil {
			return nil, r.fail("read LM calls in", err)
		}
		if messages.Valid {
			if err := json.Unmarshal([]byte(messages.String), &c.Messages); err != nil {
				return nil, r.fail("read LM calls in", fmt.Errorf("call %s: messages: %w", c.SpanID, err))
			}
		}
		if complets.Valid {
			if err := json.Unmarshal([]byte(complets.String), &c.Completions); err != nil {
				return nil, r.fail("read LM calls in", fmt.Errorf("call %s: completions: %w", c.SpanID, err))
			}
		}
		if finished.Valid {
			if err := json.Unmarshal([]byte(finished.String), &c.FinishReasons); err != nil {
				return nil, r.fail("read LM calls in", fmt.Errorf("call %s: finish reasons: %w", c.SpanID, err))
			}
		}
		c.Params = rawJSON(params)
		c.CreatedAt, c.EndedAt = fromNS(created), nullTime(ended)
		calls = append(calls, c)
	}
	if err := rows.Err(); err != nil {
		return nil, r.fail("read LM calls in", err)
	}
	return calls, nil
}

// StoredEvent is an event kept in the events table: one of a kind without a
// table of its own (retries, waits, breaker changes, parse failures,
// optimizer start and end, subscriber problems, kinds this version does not
// know).
type StoredEvent struct {
	ID       int64           `json:"id"`
	RunID    string          `json:"run_id"`
	SpanID   string          `json:"span_id,omitempty"`
	ParentID string          `json:"parent_id,omitempty"`
	Kind     string          `json:"kind"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// Events returns a run's stored events in time order, only those of the
// given kinds when any are given.
func (r *Reader) Events(ctx context.Context, runID string, kinds ...string) ([]StoredEvent, error) {
	if r.version < 2 {
		return nil, nil
	}
	query := `SELECT id, run_id, span_id, parent_id, kind, time, data FROM events WHERE run_id = ?`
	args := []any{runID}
	if len(kinds) > 0 {
		query += ` AND kind IN (?` + strings.Repeat(`, ?`, len(kinds)-1) + `)`
		for _, k := range kinds {
			args = append(args, k)
		}
	}
	rows, err := r.db.QueryContext(ctx, query+` ORDER BY time, id`, args...)
	if err != nil {
		return nil, r.fail("read events in", err)
	}
	defer rows.Close()
	var events []StoredEvent
	for rows.Next() {
		var (
			e    StoredEvent
			at   int64
			data sql.NullString
		)
		if err := rows.Scan(&e.ID, &e.RunID, &e.SpanID, &e.ParentID, &e.Kind, &at, &data); err != nil {
			return nil, r.fail("read events in", err)
		}
		e.Time, e.Data = fromNS(at), rawJSON(data)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, r.fail("read events in", err)
	}
	return events, nil
}

// EvalResult is one evaluated example.
type EvalResult struct {
	ID         int64           `json:"id"`
	RunID      string          `json:"run_id"`
	SpanID     string          `json:"span_id,omitempty"`
	Index      int             `json:"index"`
	Example    json.RawMessage `json:"example,omitempty"`
	Prediction json.RawMessage `json:"prediction,omitempty"`
	Score      float64         `json:"score"`
	Feedback   string          `json:"feedback,omitempty"`
	Error      string          `json:"error,omitempty"`
	Duration   time.Duration   `json:"duration_ns,omitempty"`
	Time       time.Time       `json:"time"`
}

// EvalResults returns a run's evaluated examples in example order.
func (r *Reader) EvalResults(ctx context.Context, runID string) ([]EvalResult, error) {
	if r.version < 2 {
		return nil, nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT id, run_id, span_id, example_index, example, prediction, score,
		feedback, error, duration_ns, created_at FROM eval_results WHERE run_id = ? ORDER BY example_index, id`, runID)
	if err != nil {
		return nil, r.fail("read evaluation results in", err)
	}
	defer rows.Close()
	var results []EvalResult
	for rows.Next() {
		var (
			e                   EvalResult
			example, prediction sql.NullString
			duration            sql.NullInt64
			at                  int64
		)
		if err := rows.Scan(&e.ID, &e.RunID, &e.SpanID, &e.Index, &example, &prediction, &e.Score, &e.Feedback,
			&e.Error, &duration, &at); err != nil {
			return nil, r.fail("read evaluation results in", err)
		}
		e.Example, e.Prediction = rawJSON(example), rawJSON(prediction)
		e.Duration, e.Time = time.Duration(duration.Int64), fromNS(at)
		results = append(results, e)
	}
	if err := rows.Err(); err != nil {
		return nil, r.fail("read evaluation results in", err)
	}
	return results, nil
}

// Trial is an optimizer trial (Kind TrialEvaluated) or a new best
// candidate (Kind TrialNewBest).
type Trial struct {
	ID        int64           `json:"id"`
	RunID     string          `json:"run_id"`
	SpanID    string          `json:"span_id,omitempty"`
	Kind      string          `json:"kind"`
	Optimizer string          `json:"optimizer"`
	Trial     int             `json:"trial"`
	Candidate json.RawMessage `json:"candidate,omitempty"`
	// Score is nil for a proposal not yet evaluated.
	Score     *float64  `json:"score,omitempty"`
	BestScore *float64  `json:"best_score,omitempty"`
	Minibatch bool      `json:"minibatch,omitempty"`
	Time      time.Time `json:"time"`
}

// Trials returns a run's optimizer trials in time order.
func (r *Reader) Trials(ctx context.Context, runID string) ([]Trial, error) {
	if r.version < 2 {
		return nil, nil
	}
	rows, err := r.db.QueryContext(ctx, `SELECT id, run_id, span_id, kind, optimizer, trial, candidate, score,
		best_score, minibatch, created_at FROM optimizer_trials WHERE run_id = ? ORDER BY created_at, id`, runID)
	if err != nil {
		return nil, r.fail("read optimizer trials in", err)
	}
	defer rows.Close()
	var trials []Trial
	for rows.Next() {
		var (
			t           Trial
			candidate   sql.NullString
			score, best sql.NullFloat64
			at          int64
		)
		if err := rows.Scan(&t.ID, &t.RunID, &t.SpanID, &t.Kind, &t.Optimizer, &t.Trial, &candidate, &score, &best,
			&t.Minibatch, &at); err != nil {
			return nil, r.fail("read optimizer trials in", err)
		}
		t.Candidate, t.Time = rawJSON(candidate), fromNS(at)
		if score.Valid {
			t.Score = &score.Float64
		}
		if best.Valid {
			t.BestScore = &best.Float64
		}
		trials = append(trials, t)
	}
	if err := rows.Err(); err != nil {
		return nil, r.fail("read optimizer trials in", err)
	}
	return trials, nil
}

func fromNS(ns int64) time.Time { return time.Unix(0, ns) }

func nullTime(ns sql.NullInt64) time.Time {
	if !ns.Valid {
		return time.Time{}
	}
	return fromNS(ns.Int64)
}

func rawJSON(s sql.NullString) json.RawMessage {
	if !s.Valid || s.String == "" {
		return nil
	}
	return json.RawMessage(s.String)
}

// RunScore sums up a run's scores: its optimizer trials and its evaluated
// examples.
type RunScore struct {
	// Trials counts evaluated trials (those with a score, minibatch ones
	// included); Best is the highest full (not minibatch) trial score,
	// nil when there is none.
	Trials int      `json:"trials"`
	Best   *float64 `json:"best,omitempty"`
	// Examples counts evaluated examples; Mean is their mean score, nil
	// when there are none.
	Examples int      `json:"examples"`
	Mean     *float64 `json:"mean,omitempty"`
}

// Scores returns the RunScore of each of the runs ids that has trials or
// evaluated examples.
func (r *Reader) Scores(ctx context.Context, ids []string) (map[string]RunScore, error) {
	out := make(map[string]RunScore, len(ids))
	if r.version < 2 || len(ids) == 0 {
		return out, nil
	}
	in := `(?` + strings.Repeat(`, ?`, len(ids)-1) + `)`
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	read := func(query string, scan func(id string, n int, v sql.NullFloat64)) error {
		rows, err := r.db.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id string
				n  int
				v  sql.NullFloat64
			)
			if err := rows.Scan(&id, &n, &v); err != nil {
				return err
			}
			scan(id, n, v)
		}
		return rows.Err()
	}
	err := read(`SELECT run_id, count(*), max(CASE WHEN NOT minibatch THEN score END) FROM optimizer_trials
		WHERE kind = 'trial' AND score IS NOT NULL AND run_id IN `+in+` GROUP BY run_id`,
		func(id string, n int, v sql.NullFloat64) {
			s := out[id]
			s.Trials = n
			if v.Valid {
				s.Best = &v.Float64
			}
			out[id] = s
		})
	if err == nil {
		err = read(`SELECT run_id, count(*), avg(score) FROM eval_results WHERE run_id IN `+in+` GROUP BY run_id`,
			func(id string, n int, v sql.NullFloat64) {
				s := out[id]
				s.Examples = n
				if v.Valid {
					s.Mean = &v.Float64
				}
				out[id] = s
			})
	}
	if err != nil {
		return nil, r.fail("read scores in", err)
	}
	return out, nil
}
