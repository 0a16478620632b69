// Package trace is DSPEx's trace store: an SQLite file recording runs, spans
// (module calls and LM calls), LM requests and responses, evaluation results,
// optimizer trials and other notable events, written from the event bus and
// read by the CLI (dspex traces, dspex history) and the dashboard.
//
// # Writing
//
// Open opens or creates the file, migrating an older schema forward, and
// starts the store's one writer goroutine. Attach subscribes the store to a
// bus with the Block policy, so that nothing published is lost while the
// store keeps up. The writer batches events into transactions — one commit
// per Options.BatchSize events, or after Options.FlushInterval, whichever
// comes first — so the cost of a commit is shared by many events. Close
// unsubscribes (handling what the subscription had buffered), commits the
// last partial batch, applies retention and closes the file.
//
//	store, err := trace.Open(ctx, path, trace.Options{Retention: trace.Retention{MaxRuns: 500}})
//	if err != nil { ... }
//	defer store.Close()
//	if err := store.Attach(bus); err != nil { ... }
//
// Start and end events of a span may arrive in any order, and either may be
// missing: rows are upserts keyed by span id, and a run's row is created the
// first time any event of the run is seen. Events of kinds the store does
// not map to tables (and payloads of unexpected types) are kept in the
// events table as JSON. Progress events are not stored.
//
// # Reading
//
// OpenReader opens the file read-only. Because the file is in WAL mode a
// reader in another process sees every committed batch while a writer goes
// on, and never blocks it.
//
// # Times
//
// Every time is stored as an INTEGER of nanoseconds since the Unix epoch
// (UTC); durations are INTEGER nanoseconds, except the LM call's latency_ms
// and queue_wait_ms, which are REAL milliseconds.
//
// # Crash safety
//
// A batch is one transaction: a writer killed at any moment (SIGKILL
// included) leaves a database that opens, passes SQLite's integrity check
// and holds every batch committed before the kill and no part of any other.
// With synchronous=NORMAL a power cut may lose the last few commits, never
// the file.
//
// docs/traces.md describes the tables and the CLI.
package trace
