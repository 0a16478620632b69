package trace

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/event"
)

// fakeClock is a settable Options.Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = t
}

// writeRuns writes one complete run (start, a call, an event of every
// table, end) per id, the i-th starting at starts[i].
func writeRuns(t *testing.T, path string, opts Options, ids []string, starts []time.Time, end bool) *Store {
	t.Helper()
	s, bus := openStore(t, path, opts)
	for i, id := range ids {
		e := newEmitter(bus, id, starts[i])
		e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "run"})
		e.call("root")
		e.emit(event.LMRetry, "root", "", &event.LMRetryInfo{Model: "m"})
		e.emit(event.EvalExample, "root", "", &event.EvalExampleInfo{Index: i})
		e.emit(event.OptimizerTrial, "root", "", &event.OptimizerTrialInfo{Trial: i})
		if end {
			e.emit(event.RunEnd, "root", "", &event.RunInfo{Name: "run"})
		}
	}
	closeStore(t, s)
	return s
}

func runIDs(t *testing.T, path string) []string {
	t.Helper()
	r := openReader(t, path)
	runs, err := r.Runs(context.Background(), ListOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, run := range runs {
		ids = append(ids, run.ID)
	}
	return ids
}

// rowCounts counts each run table's rows.
func rowCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	r := openReader(t, path)
	counts := map[string]int{}
	for _, table := range append([]string{"runs"}, tableNames()...) {
		var n int
		if err := r.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	return counts
}

func tableNames() []string {
	var names []string
	for _, t := range runTables {
		names = append(names, t.name)
	}
	return names
}

func TestRetentionByCount(t *testing.T) {
	path := tempDB(t)
	ids := make([]string, 40)
	starts := make([]time.Time, 40)
	for i := range ids {
		ids[i], starts[i] = fmt.Sprintf("run%02d", i), t0.Add(time.Duration(i)*time.Minute)
	}
	clock := &fakeClock{t: t0.Add(24 * time.Hour)}
	s := writeRuns(t, path, Options{Retention: Retention{MaxRuns: 5}, Clock: clock.Now}, ids, starts, true)
	want := []string{"run39", "run38", "run37", "run36", "run35"}
	if diff := cmp.Diff(want, runIDs(t, path)); diff != "" {
		t.Errorf("runs kept (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.RunsDeleted != 35 {
		t.Errorf("stats = %+v; want 35 runs deleted", st)
	}
	// Every row of a deleted run goes with it.
	want5 := map[string]int{"runs": 5, "spans": 10, "lm_calls": 5, "events": 5, "eval_results": 5, "optimizer_trials": 5}
	if diff := cmp.Diff(want5, rowCounts(t, path)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// TestRetentionAppliesWhileWriting: with no Close, the store still applies
// retention every 16 runs it sees start.
func TestRetentionAppliesWhileWriting(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{Retention: Retention{MaxRuns: 2}, BatchSize: 1})
	for i := range retentionEvery + 4 {
		e := newEmitter(bus, fmt.Sprintf("run%02d", i), t0.Add(time.Duration(i)*time.Minute))
		e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "run"})
		e.emit(event.RunEnd, "root", "", &event.RunInfo{Name: "run"})
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().RunsDeleted == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no retention pass after %d runs: %+v", retentionEvery+4, s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetentionByAge(t *testing.T) {
	path := tempDB(t)
	// Runs 0..9 written an hour apart; the clock stands just after the last.
	ids := make([]string, 10)
	starts := make([]time.Time, 10)
	for i := range ids {
		ids[i], starts[i] = fmt.Sprintf("run%d", i), t0.Add(time.Duration(i)*time.Hour)
	}
	clock := &fakeClock{t: t0.Add(9*time.Hour + time.Minute)}
	writeRuns(t, path, Options{Clock: clock.Now}, ids, starts, true)
	// Orphan rows (no run id), one old and one new.
	s, bus := openStore(t, path, Options{Clock: clock.Now})
	bus.Publish(event.Event{Kind: event.LMRetry, Time: t0, Data: &event.LMRetryInfo{}})
	bus.Publish(event.Event{Kind: event.LMRetry, Time: t0.Add(9 * time.Hour), Data: &event.LMRetryInfo{}})
	closeStore(t, s)
	if got := rowCounts(t, path)["events"]; got != 12 {
		t.Fatalf("%d events before retention; want 12", got)
	}

	// Reopening with a 3h30m limit keeps the runs written in the last 3h30m.
	s, _ = openStore(t, path, Options{Retention: Retention{MaxAge: 3*time.Hour + 30*time.Minute}, Clock: clock.Now})
	if st := s.Stats(); st.RunsDeleted != 6 {
		t.Errorf("stats after Open = %+v; want 6 runs deleted at Open", st)
	}
	closeStore(t, s)
	if diff := cmp.Diff([]string{"run9", "run8", "run7", "run6"}, runIDs(t, path)); diff != "" {
		t.Errorf("runs kept (-want +got):\n%s", diff)
	}
	if got := rowCounts(t, path)["events"]; got != 5 {
		t.Errorf("%d events left; want 4 of the runs kept and the new orphan", got)
	}
}

// TestRetentionKeepsActiveRuns: a run still being written is not deleted
// for MaxRuns, however many newer runs finish meanwhile; once its writer
// has been silent for activeGrace it is.
func TestRetentionKeepsActiveRuns(t *testing.T) {
	path := tempDB(t)
	clock := &fakeClock{t: t0.Add(time.Minute)}
	writeRuns(t, path, Options{Clock: clock.Now}, []string{"long"}, []time.Time{t0}, false)
	ids := []string{"a", "b", "c"}
	starts := []time.Time{t0.Add(10 * time.Second), t0.Add(20 * time.Second), t0.Add(30 * time.Second)}
	writeRuns(t, path, Options{Retention: Retention{MaxRuns: 1}, Clock: clock.Now}, ids, starts, true)
	got := runIDs(t, path)
	slices.Sort(got)
	if diff := cmp.Diff([]string{"c", "long"}, got); diff != "" {
		t.Errorf("runs kept while long runs (-want +got):\n%s", diff)
	}
	clock.Set(t0.Add(activeGrace + time.Hour))
	s, _ := openStore(t, path, Options{Retention: Retention{MaxRuns: 1}, Clock: clock.Now})
	closeStore(t, s)
	if diff := cmp.Diff([]string{"c"}, runIDs(t, path)); diff != "" {
		t.Errorf("runs kept after long went quiet (-want +got):\n%s", diff)
	}
}
