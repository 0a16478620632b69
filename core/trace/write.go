package trace

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/dspex/dspex/core/event"
)

// The writer's statements. Start and end events of a span are the same
// upsert: a start brings what is known at the start and NULL for the rest,
// an end brings everything, and each column keeps the better value, so the
// two may arrive in either order, in one batch or two, or alone.
const (
	// touchRunSQL creates the run's row on first sight of any of its
	// events. Until the run's start is seen, its start time is the earliest
	// event seen.
	// It also records the writing process (?4 pid, ?5 host) and its
	// heartbeat (?6, the commit's wall-clock time): the last process to
	// write a run's events is the one running it (a resumed run moves).
	touchRunSQL = `INSERT INTO runs (id, started_at, updated_at, pid, host, heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
		ON CONFLICT (id) DO UPDATE SET
			started_at = CASE WHEN runs.start_seen THEN runs.started_at ELSE min(runs.started_at, excluded.started_at) END,
			updated_at = max(runs.updated_at, excluded.updated_at),
			pid = excluded.pid, host = excluded.host,
			heartbeat_at = max(coalesce(runs.heartbeat_at, 0), excluded.heartbeat_at)`
	// heartbeatSQL marks a run this process is still writing as alive.
	heartbeatSQL = `UPDATE runs SET heartbeat_at = max(coalesce(heartbeat_at, 0), ?2)
		WHERE id = ?1 AND ended_at IS NULL AND pid = ?3 AND host = ?4`
	runStartSQL = `UPDATE runs SET name = ?2, program = ?3, meta = ?4, started_at = ?5, start_seen = 1 WHERE id = ?1`
	runEndSQL   = `UPDATE runs SET
			name = CASE WHEN ?2 != '' THEN ?2 ELSE name END,
			program = CASE WHEN ?3 != '' THEN ?3 ELSE program END,
			meta = coalesce(?4, meta),
			ended_at = ?5, status = ?6, error = ?7,
			calls = ?8, cache_hits = ?9, prompt_tokens = ?10, completion_tokens = ?11,
			cost_usd = ?12, cost_unknown_calls = ?13
		WHERE id = ?1`
	// spanSQL's ?13 says whether ?10 is the span's real start (a start
	// event) rather than one worked out from an end event's duration. The
	// WHERE keeps an LM call that reused its module's span id from
	// overwriting the module's row.
	spanSQL = `INSERT INTO spans (id, run_id, parent_id, kind, name, signature, inputs, outputs, error, started_at, ended_at, duration_ns)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
		ON CONFLICT (id) DO UPDATE SET
			parent_id = CASE WHEN excluded.parent_id != '' THEN excluded.parent_id ELSE spans.parent_id END,
			name = CASE WHEN excluded.name != '' THEN excluded.name ELSE spans.name END,
			signature = CASE WHEN excluded.signature != '' THEN excluded.signature ELSE spans.signature END,
			inputs = coalesce(excluded.inputs, spans.inputs),
			outputs = coalesce(excluded.outputs, spans.outputs),
			error = CASE WHEN excluded.error != '' THEN excluded.error ELSE spans.error END,
			started_at = CASE WHEN ?13 THEN excluded.started_at ELSE coalesce(spans.started_at, excluded.started_at) END,
			ended_at = coalesce(excluded.ended_at, spans.ended_at),
			duration_ns = coalesce(excluded.duration_ns, spans.duration_ns)
		WHERE spans.kind = excluded.kind`
	lmCallSQL = `INSERT INTO lm_calls (span_id, run_id, model, adapter, messages, params, completions,
			prompt_tokens, completion_tokens, total_tokens, cost_usd, cost_known, latency_ms, queue_wait_ms,
			cache_hit, attempts, error, error_kind, created_at, ended_at, finish_reasons)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?22)
		ON CONFLICT (span_id) DO UPDATE SET
			model = CASE WHEN excluded.model != '' THEN excluded.model ELSE lm_calls.model END,
			adapter = CASE WHEN excluded.adapter != '' THEN excluded.adapter ELSE lm_calls.adapter END,
			messages = coalesce(excluded.messages, lm_calls.messages),
			params = coalesce(excluded.params, lm_calls.params),
			completions = coalesce(excluded.completions, lm_calls.completions),
			finish_reasons = coalesce(excluded.finish_reasons, lm_calls.finish_reasons),
			prompt_tokens = coalesce(excluded.prompt_tokens, lm_calls.prompt_tokens),
			completion_tokens = coalesce(excluded.completion_tokens, lm_calls.completion_tokens),
			total_tokens = coalesce(excluded.total_tokens, lm_calls.total_tokens),
			cost_usd = coalesce(excluded.cost_usd, lm_calls.cost_usd),
			cost_known = coalesce(excluded.cost_known, lm_calls.cost_known),
			latency_ms = coalesce(excluded.latency_ms, lm_calls.latency_ms),
			queue_wait_ms = coalesce(excluded.queue_wait_ms, lm_calls.queue_wait_ms),
			cache_hit = coalesce(excluded.cache_hit, lm_calls.cache_hit),
			attempts = coalesce(excluded.attempts, lm_calls.attempts),
			error = coalesce(excluded.error, lm_calls.error),
			error_kind = coalesce(excluded.error_kind, lm_calls.error_kind),
			created_at = CASE WHEN ?21 THEN excluded.created_at ELSE lm_calls.created_at END,
			ended_at = coalesce(excluded.ended_at, lm_calls.ended_at)`
	eventSQL = `INSERT INTO events (run_id, span_id, parent_id, kind, time, data) VALUES (?, ?, ?, ?, ?, ?)`
	evalSQL  = `INSERT INTO eval_results (run_id, span_id, parent_id, example_index, example, prediction, score, feedback, error, duration_ns, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	trialSQL = `INSERT INTO optimizer_trials (run_id, span_id, parent_id, kind, optimizer, trial, candidate, score, best_score, minibatch, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// Kinds of span and of optimizer_trials row.
const (
	SpanModule = "module"
	SpanLM     = "lm"

	TrialEvaluated = "trial"    // an OptimizerTrial event
	TrialNewBest   = "new_best" // an OptimizerNewBest event
)

// writer maps events to rows. It is used by the store's writer goroutine
// only (and by Open and Close around it).
type writer struct {
	db                                                           *sql.DB
	touchRun, runStart, runEnd, span, lmCall, event, eval, trial *sql.Stmt
	skipErr                                                      func(error)
	redact                                                       func(string) string

	// pid and host name this process in the runs it writes; open are the
	// runs whose start it wrote and whose end it has not, which its
	// heartbeat keeps marked alive.
	pid  int
	host string
	open map[string]bool

	// Per batch, reused: run → its earliest and latest event; the spans
	// whose end is in the batch; and their starts, once seen.
	runs   map[string][2]int64
	ends   map[spanKey]bool
	starts map[spanKey]*event.Event
}

// spanKey names a span for merging its start and end.
type spanKey struct {
	lm bool
	id string
}

func newWriter(ctx context.Context, db *sql.DB) (*writer, error) {
	w := &writer{db: db, runs: make(map[string][2]int64), ends: make(map[spanKey]bool), starts: make(map[spanKey]*event.Event),
		pid: os.Getpid(), host: hostName(), open: make(map[string]bool)}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.touchRun, touchRunSQL}, {&w.runStart, runStartSQL}, {&w.runEnd, runEndSQL}, {&w.span, spanSQL},
		{&w.lmCall, lmCallSQL}, {&w.event, eventSQL}, {&w.eval, evalSQL}, {&w.trial, trialSQL},
	} {
		var err error
		if *p.stmt, err = db.PrepareContext(ctx, p.sql); err != nil {
			w.close()
			return nil, fmt.Errorf("prepare statement: %w", err)
		}
	}
	return w, nil
}

func (w *writer) close() {
	for _, s := range []*sql.Stmt{w.touchRun, w.runStart, w.runEnd, w.span, w.lmCall, w.event, w.eval, w.trial} {
		if s != nil {
			s.Close()
		}
	}
}

// tx is one batch's transaction with the writer's statements bound to it.
type tx struct {
	*sql.Tx
	ctx                                                          context.Context
	touchRun, runStart, runEnd, span, lmCall, event, eval, trial *sql.Stmt
	ends                                                         map[spanKey]bool
	starts                                                       map[spanKey]*event.Event
	redact                                                       func(string) string
}

// clean is an error as stored: redacted and clipped to MaxErrorBytes.
func (t *tx) clean(s string) string {
	return clipText(t.redacted(s), MaxErrorBytes)
}

// redacted is s without the configured secrets.
func (t *tx) redacted(s string) string {
	if t.redact == nil || s == "" {
		return s
	}
	return t.redact(s)
}

// write stores batch in one transaction. It returns how many runs started
// in it and how many events were skipped because a row could not hold them
// (the rest are committed); err means nothing was committed.
//
// A span whose start and end are both in the batch is written once, when
// its end comes: that halves the work for the usual short spans.
func (w *writer) write(batch []event.Event, clock func() time.Time) (runStarts, skipped int, err error) {
	ctx := context.Background()
	clear(w.runs)
	clear(w.ends)
	clear(w.starts)
	for i := range batch {
		ev := &batch[i]
		if ev.Time.IsZero() {
			ev.Time = clock()
		}
		if k, end, ok := spanEvent(ev); ok && end {
			w.ends[k] = true
		}
		if ev.RunID == "" {
			continue
		}
		t := ev.Time.UnixNano()
		if r, ok := w.runs[ev.RunID]; ok {
			w.runs[ev.RunID] = [2]int64{min(r[0], t), max(r[1], t)}
		} else {
			w.runs[ev.RunID] = [2]int64{t, t}
		}
	}
	sqlTx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer sqlTx.Rollback()
	t := &tx{Tx: sqlTx, ctx: ctx, ends: w.ends, starts: w.starts, redact: w.redact}
	for _, p := range []struct{ dst, src **sql.Stmt }{
		{&t.touchRun, &w.touchRun}, {&t.runStart, &w.runStart}, {&t.runEnd, &w.runEnd}, {&t.span, &w.span},
		{&t.lmCall, &w.lmCall}, {&t.event, &w.event}, {&t.eval, &w.eval}, {&t.trial, &w.trial},
	} {
		*p.dst = sqlTx.StmtContext(ctx, *p.src)
	}
	beat := time.Now().UnixNano()
	for id, r := range w.runs {
		if _, err := t.touchRun.ExecContext(ctx, id, r[0], r[1], w.pid, w.host, beat); err != nil {
			return 0, 0, fmt.Errorf("record run %s: %w", id, err)
		}
	}
	for i := range batch {
		ev := &batch[i]
		if err := t.applySafe(ev); err != nil {
			if !dataError(err) {
				return 0, 0, fmt.Errorf("store %s event: %w", ev.Kind, err)
			}
			skipped++
			if w.skipErr != nil {
				w.skipErr(fmt.Errorf("store %s event of run %s: %w", ev.Kind, ev.RunID, err))
			}
			continue
		}
		switch ev.Kind {
		case event.RunStart:
			runStarts++
			if ev.RunID != "" {
				w.open[ev.RunID] = true
			}
		case event.RunEnd:
			delete(w.open, ev.RunID)
		}
	}
	return runStarts, skipped, sqlTx.Commit()
}

// spanEvent says which span ev starts or ends (end true), when it is a
// module or LM event with a span id and the payload it should have.
func spanEvent(ev *event.Event) (k spanKey, end, ok bool) {
	if ev.SpanID == "" {
		return spanKey{}, false, false
	}
	switch ev.Kind {
	case event.ModuleStart, event.ModuleEnd:
		_, ok = payload[event.ModuleCall](ev.Data)
		return spanKey{id: ev.SpanID}, ev.Kind == event.ModuleEnd, ok
	case event.LMStart, event.LMEnd:
		_, ok = payload[event.LMCall](ev.Data)
		return spanKey{lm: true, id: ev.SpanID}, ev.Kind == event.LMEnd, ok
	}
	return spanKey{}, false, false
}

// payloadPanic is a panic raised while encoding an event's payload (a
// MarshalJSON or String method of a type the store does not know).
type payloadPanic struct{ v any }

func (p payloadPanic) Error() string { return fmt.Sprintf("payload panicked: %v", p.v) }

// applySafe is apply, turning a panic into an error that skips the event.
func (t *tx) applySafe(ev *event.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = payloadPanic{r}
		}
	}()
	return t.apply(ev)
}

// dataError reports errors caused by one event's values rather than by the
// file: that event is skipped and the batch goes on.
func dataError(err error) bool {
	if errors.As(err, new(payloadPanic)) {
		return true
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrConstraint, sqlite3.ErrMismatch, sqlite3.ErrTooBig, sqlite3.ErrRange:
		return true
	}
	return false
}

// payload returns d as a *T, accepting a T too.
func payload[T any](d any) (*T, bool) {
	switch v := d.(type) {
	case *T:
		return v, v != nil
	case T:
		return &v, true
	}
	return nil, false
}

// apply writes one event's rows. Payloads of unexpected types, and events
// of kinds without a table of their own, go to the events table.
func (t *tx) apply(ev *event.Event) error {
	at := ev.Time.UnixNano()
	switch ev.Kind {
	case event.Progress:
		return nil
	case event.RunStart, event.RunEnd:
		if p, ok := payload[event.RunInfo](ev.Data); ok && ev.RunID != "" {
			return t.run(ev, p, at)
		}
	case event.ModuleStart, event.ModuleEnd:
		if p, ok := payload[event.ModuleCall](ev.Data); ok {
			return t.module(ev, p, at)
		}
	case event.LMStart, event.LMEnd:
		if p, ok := payload[event.LMCall](ev.Data); ok {
			return t.lm(ev, p, at)
		}
	case event.EvalExample:
		if p, ok := payload[event.EvalExampleInfo](ev.Data); ok {
			_, err := t.eval.ExecContext(t.ctx, ev.RunID, ev.SpanID, ev.ParentID, p.Index,
				jsonMap(p.Example), jsonMap(p.Prediction), p.Score, p.Feedback, t.clean(p.Error), nullDuration(p.Duration), at)
			return err
		}
	case event.OptimizerTrial, event.OptimizerNewBest:
		if p, ok := payload[event.OptimizerTrialInfo](ev.Data); ok {
			kind := TrialEvaluated
			if ev.Kind == event.OptimizerNewBest {
				kind = TrialNewBest
			}
			_, err := t.trial.ExecContext(t.ctx, ev.RunID, ev.SpanID, ev.ParentID, kind, p.Optimizer, p.Trial,
				jsonMap(p.Candidate), nullFloat(p.Score), nullFloat(p.BestScore), p.Minibatch, at)
			return err
		}
	}
	var data any
	if ev.Data != nil {
		data = t.redacted(toJSON(ev.Data))
	}
	_, err := t.event.ExecContext(t.ctx, ev.RunID, ev.SpanID, ev.ParentID, string(ev.Kind), at, data)
	return err
}

func (t *tx) run(ev *event.Event, p *event.RunInfo, at int64) error {
	if ev.Kind == event.RunStart {
		_, err := t.runStart.ExecContext(t.ctx, ev.RunID, p.Name, p.Program, jsonMap(p.Meta), at)
		return err
	}
	status := "ok"
	if p.Error != "" {
		status = "error"
	}
	_, err := t.runEnd.ExecContext(t.ctx, ev.RunID, p.Name, p.Program, jsonMap(p.Meta), at, status, t.clean(p.Error),
		p.Calls, p.CacheHits, p.PromptTokens, p.CompletionTokens, p.CostUSD, p.CostUnknownCalls)
	return err
}

// deferStart reports whether ev, a span's start, is left for its end in
// the same batch to write; it keeps ev for that end.
func (t *tx) deferStart(k spanKey, ev *event.Event) bool {
	if !t.ends[k] {
		return false
	}
	if _, seen := t.starts[k]; !seen {
		t.starts[k] = ev
	}
	return true
}

// module writes a module call's span. A start without a span id cannot be
// matched with its end and is not stored; an end without one gets an id.
func (t *tx) module(ev *event.Event, p *event.ModuleCall, at int64) error {
	id := ev.SpanID
	k := spanKey{id: id}
	if ev.Kind == event.ModuleStart {
		if id == "" || t.deferStart(k, ev) {
			return nil
		}
		_, err := t.span.ExecContext(t.ctx, id, ev.RunID, ev.ParentID, SpanModule, p.Module, p.Signature,
			jsonMap(p.Inputs), nil, t.clean(p.Error), at, nil, nil, true)
		return err
	}
	if id == "" {
		id = event.NewID()
	}
	delete(t.ends, k) // a start after this end is written on its own
	start, exact := startFromEnd(at, p.Duration), false
	c := *p
	if st, ok := t.starts[k]; ok && id == ev.SpanID {
		// What the end leaves out, the start says.
		delete(t.starts, k)
		start, exact = st.Time.UnixNano(), true
		sp, _ := payload[event.ModuleCall](st.Data)
		c.Module = cmp.Or(c.Module, sp.Module)
		c.Signature = cmp.Or(c.Signature, sp.Signature)
		if c.Inputs == nil {
			c.Inputs = sp.Inputs
		}
	}
	_, err := t.span.ExecContext(t.ctx, id, ev.RunID, ev.ParentID, SpanModule, c.Module, c.Signature,
		jsonMap(c.Inputs), jsonMap(c.Outputs), t.clean(c.Error), start, at, nullDuration(c.Duration), exact)
	return err
}

// lm writes an LM call's span and its lm_calls row.
func (t *tx) lm(ev *event.Event, p *event.LMCall, at int64) error {
	id := ev.SpanID
	k := spanKey{lm: true, id: id}
	if ev.Kind == event.LMStart {
		if id == "" || t.deferStart(k, ev) {
			return nil
		}
		if _, err := t.span.ExecContext(t.ctx, id, ev.RunID, ev.ParentID, SpanLM, p.Model, "",
			nil, nil, t.clean(p.Error), at, nil, nil, true); err != nil {
			return err
		}
		_, err := t.lmCall.ExecContext(t.ctx, id, ev.RunID, p.Model, p.Adapter, messagesJSON(p.Messages), jsonMap(p.Params),
			nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, at, nil, true, nil)
		return err
	}
	if id == "" {
		id = event.NewID()
	}
	delete(t.ends, k)
	start, exact := startFromEnd(at, p.Latency), false
	c := *p
	if st, ok := t.starts[k]; ok && id == ev.SpanID {
		delete(t.starts, k)
		start, exact = st.Time.UnixNano(), true
		sp, _ := payload[event.LMCall](st.Data)
		c.Model = cmp.Or(c.Model, sp.Model)
		c.Adapter = cmp.Or(c.Adapter, sp.Adapter)
		if len(c.Messages) == 0 {
			c.Messages = sp.Messages
		}
		if c.Params == nil {
			c.Params = sp.Params
		}
	}
	p = &c
	if _, err := t.span.ExecContext(t.ctx, id, ev.RunID, ev.ParentID, SpanLM, p.Model, "",
		nil, nil, t.clean(p.Error), start, at, nil, exact); err != nil {
		return err
	}
	var completions, finishes any
	if len(p.Completions) > 0 {
		completions = toJSON(p.Completions)
	}
	if len(p.FinishReasons) > 0 {
		finishes = toJSON(p.FinishReasons)
	}
	created := start
	if created == nil {
		created = at
	}
	_, err := t.lmCall.ExecContext(t.ctx, id, ev.RunID, p.Model, p.Adapter, messagesJSON(p.Messages), jsonMap(p.Params), completions,
		p.PromptTokens, p.CompletionTokens, p.PromptTokens+p.CompletionTokens, p.CostUSD, p.CostKnown,
		ms(p.Latency), ms(p.QueueWait), p.CacheHit, p.Attempts, t.clean(p.Error), p.ErrorKind, created, at, exact, finishes)
	return err
}

func messagesJSON(m []event.Message) any {
	if len(m) == 0 {
		return nil
	}
	return toJSON(m)
}

// startFromEnd works a span's start out from its end and duration; nil
// when the duration is unknown.
func startFromEnd(end int64, d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return end - int64(d)
}

func nullDuration(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return int64(d)
}

func nullFloat(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// jsonMap encodes m as JSON text; nil (SQL NULL) for a nil map.
func jsonMap(m map[string]any) any {
	if m == nil {
		return nil
	}
	return toJSON(m)
}

// maxFallbackText bounds the Go formatting of a value JSON cannot hold.
const maxFallbackText = 4096

// toJSON encodes v, each string clipped to MaxTextBytes. Values JSON
// cannot hold (NaN, channels, functions) are written as their Go
// formatting, so that one odd value never costs the rest of an event.
func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err == nil {
		return string(clipJSON(b))
	}
	if m, ok := v.(map[string]any); ok {
		fixed := make(map[string]any, len(m))
		for k, x := range m {
			if _, err := json.Marshal(x); err != nil {
				x = goText(x)
			}
			fixed[k] = x
		}
		if b, err := json.Marshal(fixed); err == nil {
			return string(b)
		}
	}
	b, _ = json.Marshal(map[string]string{"type": fmt.Sprintf("%T", v), "value": goText(v), "json_error": err.Error()})
	return string(b)
}

func goText(v any) string {
	s := fmt.Sprintf("%v", v)
	if len(s) > maxFallbackText {
		s = s[:maxFallbackText] + "..."
	}
	return s
}

// hostName is this machine's name, "" when it cannot be had.
// hostName is this machine's name, read once: Run.State asks it for every
// run a list shows (the dashboard's, twice a second per open page).
var hostName = sync.OnceValue(func() string {
	h, _ := os.Hostname()
	return h
})

// heartbeat marks the runs this process is writing as alive at now.
func (w *writer) heartbeat(ctx context.Context, now time.Time) error {
	if len(w.open) == 0 {
		return nil
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for id := range w.open {
		if _, err := tx.ExecContext(ctx, heartbeatSQL, id, now.UnixNano(), w.pid, w.host); err != nil {
			return err
		}
	}
	return tx.Commit()
}
