package trace

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/internal/sqlitedb"
)

// Defaults for Options.
const (
	DefaultBatchSize     = 256
	DefaultFlushInterval = 100 * time.Millisecond
	DefaultBuffer        = 4096
	DefaultBusyTimeout   = 5 * time.Second
	// DefaultRefusalInterval is how often counts of refused HTTP requests
	// are written.
	DefaultRefusalInterval = time.Minute
	// DefaultRetentionInterval is how often retention runs in a store
	// that stays open (a long dspex serve).
	DefaultRetentionInterval = 10 * time.Minute
	// DefaultHeartbeatInterval is how often a store marks the runs it is
	// writing as alive (see Run.State).
	DefaultHeartbeatInterval = 2 * time.Second
)

// EventHTTPRefused is the kind of the events-table row counting HTTP
// requests refused without running the program (see
// Options.RefusalInterval); its data is a RefusalCount.
const EventHTTPRefused = "http.refused"

const (
	// retentionEvery is how many runs the writer sees start between two
	// retention passes (besides the ones at Open and Close).
	retentionEvery = 16
	// activeGrace protects a run that is still running from MaxRuns
	// retention while it has written within this long: another process's
	// short runs must not delete a long optimization under way. A run whose
	// writer died stops being protected this long after its last write.
	activeGrace = 10 * time.Minute
	// commitAttempts bounds how often a batch is tried while another
	// process holds the file's lock past the busy timeout.
	commitAttempts = 3
)

var (
	// ErrClosed is returned by methods of a closed Store.
	ErrClosed = errors.New("trace: store closed")
	// ErrAttached is returned by a second Attach.
	ErrAttached = errors.New("trace: store already attached to a bus")
)

// Retention bounds what the file keeps. Whole runs are deleted, with all
// their rows. It is applied at Open, after every 16 runs the store sees
// start, every Options.RetentionInterval while the store is open, and at
// Close.
type Retention struct {
	// MaxRuns keeps the newest MaxRuns runs (by start time). 0: unlimited.
	// A run still running that wrote within the last 10 minutes is never
	// deleted for this.
	MaxRuns int
	// MaxAge deletes runs whose last write is older than MaxAge, rows
	// outside any run older than that, and the rows older than that of
	// runs still running (a long dspex serve). 0: unlimited.
	MaxAge time.Duration
}

// Options configure Open. The zero value works.
type Options struct {
	// Retention bounds the runs kept. Default: keep everything.
	Retention Retention
	// BatchSize is how many events one transaction holds at most.
	// Default 256.
	BatchSize int
	// FlushInterval bounds how long an event waits for its batch to be
	// committed. Default 100ms. An event whose payload is event.Durable
	// commits its batch at once.
	FlushInterval time.Duration
	// Buffer is the bus subscription's buffer (events). Default 4096.
	Buffer int
	// BlockTimeout bounds how long a publisher waits when the store cannot
	// keep up (see event.SubscribeOptions). Default event.DefaultBlockTimeout.
	BlockTimeout time.Duration
	// BusyTimeout is how long an SQLite call waits for another process
	// holding the file's lock. Default 5s.
	BusyTimeout time.Duration
	// Clock gives the time for retention and for events published without
	// one. Default time.Now.
	Clock func() time.Time
	// RefusalInterval: HTTP requests refused without running the program
	// (event.HTTPRequest with a 4xx status other than 499: invalid, not
	// found, too large, overloaded) are not stored one by one. The store
	// counts them by run, status and error type, and writes one
	// EventHTTPRefused row per count every RefusalInterval and at Close.
	// Default 1m.
	RefusalInterval time.Duration
	// RetentionInterval is how often Retention is applied while the store
	// is open. Default 10m.
	RetentionInterval time.Duration
	// HeartbeatInterval is how often the store records, in each run it
	// started and has not ended, that its process is alive, so that a
	// reader can tell a run whose process died (see Run.State). Default
	// 2s; readers take a run whose heartbeat is older than DeadAfter as
	// dead, so it must stay well below that.
	HeartbeatInterval time.Duration
	// Redact removes secrets (API keys, LM header values, base URL query
	// parameters) from the text of stored errors and of events stored as
	// JSON in the events table. Prompts and answers are stored as they
	// are. Nil stores everything as it is.
	Redact func(string) string
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.BlockTimeout <= 0 {
		o.BlockTimeout = event.DefaultBlockTimeout
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.RefusalInterval <= 0 {
		o.RefusalInterval = DefaultRefusalInterval
	}
	if o.RetentionInterval <= 0 {
		o.RetentionInterval = DefaultRetentionInterval
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	return o
}

// Stats are a store's counters since Open.
type Stats struct {
	// Events counts events committed to the file.
	Events int64 `json:"events"`
	// Batches counts committed transactions of events.
	Batches int64 `json:"batches"`
	// Dropped counts events lost: not written because of an error, or
	// dropped by the bus because the store fell behind.
	Dropped int64 `json:"dropped"`
	// RunsDeleted counts runs deleted by retention.
	RunsDeleted int64 `json:"runs_deleted"`
	// Refused counts refused HTTP requests counted rather than stored
	// (see Options.RefusalInterval).
	Refused int64 `json:"refused"`
	// Err is the first write error, else the last retention error; ""
	// when there was none.
	Err string `json:"error,omitempty"`
}

// Store writes events to a trace database. Its methods are safe for
// concurrent use. It owns one writer goroutine from Open to Close.
type Store struct {
	path string
	db   *sql.DB
	opts Options
	w    *writer

	in   chan event.Event // subscription handler → writer
	done chan struct{}    // closed when the writer returns

	mu     sync.Mutex // guards sub and closed
	sub    *event.Subscription
	closed bool

	events, batches, dropped, deleted, refused atomic.Int64
	errMu                                      sync.Mutex
	firstErr                                   error // the first write error
	retainErr                                  error // the last retention error
}

// Open opens the trace database at path, creating it and its parent
// directories if missing, migrating an older schema to SchemaVersion, and
// applies retention. It refuses a file written by a newer dspex (a
// *VersionError) and an SQLite file holding other tables (ErrNotTraceDB).
// ctx bounds opening only; the store lives until Close.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if err := ctx.Err(); err != nil {
		return nil, describe(path, err)
	}
	switch fi, err := os.Stat(path); {
	case err == nil && fi.IsDir():
		return nil, describe(path, errors.New("is a directory"))
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, describe(path, err)
		}
	case err != nil:
		return nil, describe(path, err)
	}
	if err := sqlitedb.PrivateFile(path); err != nil {
		return nil, describe(path, err)
	}
	db := openDB(path, opts.BusyTimeout, false)
	// One connection: the writer is the only user, and a single connection
	// keeps prepared statements on it.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	if err := retryBusy(ctx, opts.BusyTimeout, func() error { return prepare(ctx, db, path) }); err != nil {
		db.Close()
		return nil, describe(path, err)
	}
	w, err := newWriter(ctx, db)
	if err != nil {
		db.Close()
		return nil, describe(path, err)
	}
	s := &Store{
		path: path, db: db, opts: opts, w: w,
		in:   make(chan event.Event, opts.BatchSize),
		done: make(chan struct{}),
	}
	w.skipErr = s.noteErr
	w.redact = opts.Redact
	s.retain(ctx)
	go s.run()
	return s, nil
}

// Path is the database file (absolute).
func (s *Store) Path() string { return s.path }

// Attach subscribes the store to every kind of event on bus with the Block
// policy. A store attaches to one bus; a second call returns ErrAttached.
func (s *Store) Attach(bus *event.Bus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.sub != nil {
		return ErrAttached
	}
	sub, err := bus.Subscribe(event.SubscribeOptions{
		Name:         "trace store " + s.path,
		Buffer:       s.opts.Buffer,
		Policy:       event.Block,
		BlockTimeout: s.opts.BlockTimeout,
	}, s.handle)
	if err != nil {
		return fmt.Errorf("trace: attach: %w", err)
	}
	s.sub = sub
	return nil
}

// handle runs on the subscription's goroutine: it hands ev to the writer,
// waiting while the writer's queue is full.
func (s *Store) handle(ev event.Event) {
	if ev.Kind == event.Progress {
		return
	}
	select {
	case s.in <- ev:
	case <-s.done: // the writer is gone; nothing will store ev
		s.dropped.Add(1)
	}
}

// Close unsubscribes from the bus — the store still handles what the
// subscription had buffered — commits the last batch, applies retention and
// closes the file. It returns an error when events could not be written
// (retention failures are only reported in Stats). A second Close returns
// nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sub := s.sub
	s.mu.Unlock()
	if sub != nil {
		sub.Close()
		s.dropped.Add(sub.Stats().Dropped)
	}
	close(s.in)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.BusyTimeout)
	s.retain(ctx)
	cancel()
	s.w.close()
	err := s.db.Close()
	dropped := s.dropped.Load()
	switch werr := s.writeErr(); {
	case werr != nil && dropped > 0:
		return fmt.Errorf("trace: %s not stored in %s: %w", eventCount(dropped), s.path, werr)
	case werr != nil:
		return fmt.Errorf("trace: %s: %w", s.path, werr)
	case dropped > 0:
		return fmt.Errorf("trace: %s not stored in %s: the store fell behind the bus", eventCount(dropped), s.path)
	case err != nil:
		return fmt.Errorf("trace: close %s: %w", s.path, err)
	}
	return nil
}

func eventCount(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{Events: s.events.Load(), Batches: s.batches.Load(), Dropped: s.dropped.Load(), RunsDeleted: s.deleted.Load(),
		Refused: s.refused.Load()}
	s.mu.Lock()
	if s.sub != nil && !s.closed {
		st.Dropped += s.sub.Stats().Dropped
	}
	s.mu.Unlock()
	s.errMu.Lock()
	if err := cmp.Or(s.firstErr, s.retainErr); err != nil {
		st.Err = err.Error()
	}
	s.errMu.Unlock()
	return st
}

func (s *Store) noteErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.firstErr == nil {
		s.firstErr = err
	}
}

func (s *Store) writeErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.firstErr
}

// run is the writer goroutine: it collects events into a batch and commits
// it when it is full or FlushInterval after its first event, and once more
// when the input closes. It counts refused HTTP requests instead of
// storing them, and applies retention every RetentionInterval.
func (s *Store) run() {
	defer close(s.done)
	batch := make([]event.Event, 0, s.opts.BatchSize)
	timer := time.NewTimer(s.opts.FlushInterval)
	timer.Stop()
	var tick <-chan time.Time // non-nil while the batch waits for the timer
	housekeeping := time.NewTicker(min(s.opts.RefusalInterval, s.opts.RetentionInterval))
	defer housekeeping.Stop()
	heartbeat := time.NewTicker(s.opts.HeartbeatInterval)
	defer heartbeat.Stop()
	refusals := newRefusals()
	sinceRetention := 0
	lastRetention := time.Now()
	retain := func() {
		sinceRetention = 0
		lastRetention = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.BusyTimeout)
		s.retain(ctx)
		cancel()
	}
	flush := func() {
		if len(batch) > 0 {
			sinceRetention += s.commit(batch)
			clear(batch) // let the payloads go
			batch = batch[:0]
		}
		timer.Stop()
		tick = nil
		if sinceRetention >= retentionEvery {
			retain()
		}
	}
	for {
		select {
		case ev, ok := <-s.in:
			if !ok {
				batch = refusals.appendTo(batch)
				flush()
				return
			}
			if refusals.count(ev) {
				s.refused.Add(1)
				continue
			}
			batch = append(batch, ev)
			if len(batch) >= s.opts.BatchSize || event.IsDurable(ev) {
				flush()
			} else if tick == nil {
				timer.Reset(s.opts.FlushInterval)
				tick = timer.C
			}
		case <-tick:
			flush()
		case <-heartbeat.C:
			// Best effort: a missed beat is made up by the next one, and
			// readers allow for several.
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.HeartbeatInterval)
			_ = s.w.heartbeat(ctx, time.Now())
			cancel()
		case <-housekeeping.C:
			if time.Since(refusals.since) >= s.opts.RefusalInterval && refusals.pending() {
				batch = refusals.appendTo(batch)
				flush()
			}
			if time.Since(lastRetention) >= s.opts.RetentionInterval {
				retain()
			}
		}
	}
}

// commit writes batch in one transaction, retrying while another process
// holds the lock, and returns how many runs it saw start.
func (s *Store) commit(batch []event.Event) (runStarts int) {
	var err error
	for attempt := range commitAttempts {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		}
		var skipped int
		runStarts, skipped, err = s.w.write(batch, s.opts.Clock)
		if err == nil {
			s.events.Add(int64(len(batch) - skipped))
			s.dropped.Add(int64(skipped))
			s.batches.Add(1)
			return runStarts
		}
		if !busy(err) {
			break
		}
	}
	s.dropped.Add(int64(len(batch)))
	s.noteErr(fmt.Errorf("write %d events: %w", len(batch), err))
	return 0
}

// retain applies the retention options, recording a failure in Stats
// rather than returning it: retention never stops tracing, and a pass that
// fails is made again later.
func (s *Store) retain(ctx context.Context) {
	r := s.opts.Retention
	if r.MaxRuns <= 0 && r.MaxAge <= 0 {
		return
	}
	n, err := applyRetention(ctx, s.db, r, s.opts.Clock())
	s.deleted.Add(int64(n))
	if err != nil {
		s.errMu.Lock()
		s.retainErr = fmt.Errorf("apply retention: %w", err)
		s.errMu.Unlock()
	}
}
