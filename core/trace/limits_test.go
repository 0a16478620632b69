package trace

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
)

// fileSize is the database's size with its write-ahead log.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// A flood of refused requests with 60 KB paths grows the file by a bounded
// amount: refusals are counted, one row per run, status and type, and the
// requests that did run are stored with their paths cut short.
func TestRefusalFloodIsBounded(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{RefusalInterval: 20 * time.Millisecond})
	e := newEmitter(bus, "serve", t0)
	e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "serve"})
	e.emit(event.RunEnd, "root", "", &event.RunInfo{Name: "serve"})
	waitStored(t, s, 2)
	before := fileSize(t, path)

	long := "/" + strings.Repeat("p", 60<<10)
	const flood = 2000
	for i := range flood {
		status, typ := 429, "overloaded"
		if i%4 == 0 {
			status, typ = 404, "not_found"
		}
		e.emit(event.HTTPRequest, "req", "root", &event.HTTPRequestInfo{Method: "GET", Path: long, Status: status,
			ErrorType: typ, Error: "no endpoint " + long})
	}
	// Two requests that ran: stored one by one, their long paths cut.
	e.emit(event.HTTPRequest, "ok", "root", &event.HTTPRequestInfo{Method: "POST", Path: long, Status: 200})
	e.emit(event.HTTPRequest, "bad", "root", &event.HTTPRequestInfo{Method: "POST", Path: "/v1/predict", Status: 502,
		ErrorType: "lm_error", Error: strings.Repeat("e", 1<<20)})
	closeStore(t, s)

	if st := s.Stats(); st.Refused != flood {
		t.Errorf("Stats().Refused = %d, want %d", st.Refused, flood)
	}
	grew := fileSize(t, path) - before
	const bound = 2 << 20
	if grew > bound {
		t.Errorf("%d refused requests grew the database by %d bytes, more than %d", flood, grew, bound)
	}
	db := rawDB(t, path)
	var rows, counted int64
	if err := db.QueryRow(`SELECT count(*), coalesce(sum(json_extract(data, '$.count')), 0) FROM events WHERE kind = ?`,
		EventHTTPRefused).Scan(&rows, &counted); err != nil {
		t.Fatal(err)
	}
	if counted != flood || rows < 2 || rows > 2*int64(flood)/100 {
		t.Errorf("%d %s rows counting %d requests; want a few rows counting %d", rows, EventHTTPRefused, counted, flood)
	}
	var stored, longest int64
	if err := db.QueryRow(`SELECT count(*), max(length(data)) FROM events WHERE kind = ?`, string(event.HTTPRequest)).Scan(&stored, &longest); err != nil {
		t.Fatal(err)
	}
	if stored != 2 || longest > MaxTextBytes+1024 {
		t.Errorf("%d requests stored one by one, the longest %d bytes; want 2 of at most about %d", stored, longest, MaxTextBytes)
	}
	var path404 string
	if err := db.QueryRow(`SELECT json_extract(data, '$.sample_path') FROM events WHERE kind = ? AND json_extract(data, '$.status') = 404`,
		EventHTTPRefused).Scan(&path404); err != nil {
		t.Fatal(err)
	}
	if len(path404) > maxSamplePath+64 || !strings.Contains(path404, "[dspex: truncated") {
		t.Errorf("sample path of %d bytes, without the truncation marker", len(path404))
	}
}

// waitStored waits for the store to commit n events.
func waitStored(t *testing.T, s *Store, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Events < n {
		if time.Now().After(deadline) {
			t.Fatalf("the store committed %d events within 10s, want %d", s.Stats().Events, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A huge prompt, answer and error are stored cut to the documented bounds,
// with the truncation marker, and still read back.
func TestLargeValuesAreClipped(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{})
	e := newEmitter(bus, "run1", t0)
	huge := strings.Repeat("é", 1<<20) // 2 MiB, multi-byte runes
	e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "run"})
	e.emit(event.LMEnd, "lm1", "root", &event.LMCall{Model: "m", Messages: []event.Message{{Role: "user", Content: huge}},
		Completions: []string{huge, "short"}, Error: huge, Latency: time.Millisecond})
	e.emit(event.ModuleEnd, "m1", "root", &event.ModuleCall{Module: "Predict", Inputs: map[string]any{"q": huge, "n": 3},
		Outputs: map[string]any{"a": []any{huge}}, Duration: time.Millisecond})
	closeStore(t, s)

	db := rawDB(t, path)
	var msgs, comps, errLen, inputs, outputs int
	if err := db.QueryRow(`SELECT length(CAST(messages AS BLOB)), length(CAST(completions AS BLOB)), length(CAST(error AS BLOB)) FROM lm_calls`).Scan(&msgs, &comps, &errLen); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT length(CAST(inputs AS BLOB)), length(CAST(outputs AS BLOB)) FROM spans WHERE kind = 'module'`).Scan(&inputs, &outputs); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"messages": msgs, "completions": comps, "inputs": inputs, "outputs": outputs} {
		if n > MaxTextBytes+1024 {
			t.Errorf("%s stored in %d bytes, more than about %d", name, n, MaxTextBytes)
		}
	}
	if errLen > MaxErrorBytes+64 {
		t.Errorf("error stored in %d bytes, more than about %d", errLen, MaxErrorBytes)
	}
	calls, err := openReader(t, path).LMCalls(context.Background(), LMCallQuery{})
	if err != nil || len(calls) != 1 {
		t.Fatalf("LMCalls = %d calls, %v", len(calls), err)
	}
	c := calls[0]
	if len(c.Completions) != 2 || c.Completions[1] != "short" || !strings.HasSuffix(c.Completions[0], "bytes]") ||
		!strings.Contains(c.Messages[0].Content, "[dspex: truncated") {
		t.Errorf("read back: %d completions, the second %q; message ends %q", len(c.Completions), c.Completions[len(c.Completions)-1],
			c.Messages[0].Content[max(0, len(c.Messages[0].Content)-40):])
	}
}

// Retention runs every RetentionInterval while the store stays open, and
// MaxAge reaches the old rows of a run still running (a long serve).
func TestPeriodicRetentionTrimsARunningRun(t *testing.T) {
	clock := &fakeClock{t: t0}
	path := tempDB(t)
	s, bus := openStore(t, path, Options{Clock: clock.Now, RetentionInterval: 20 * time.Millisecond,
		Retention: Retention{MaxAge: time.Hour}})
	e := newEmitter(bus, "serve", t0)
	e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "serve"})
	for range 10 {
		e.call("root")
		e.emit(event.HTTPRequest, "req", "root", &event.HTTPRequestInfo{Method: "POST", Path: "/v1/predict", Status: 200})
	}
	waitStored(t, s, 51)
	// Two hours later the server still runs; a new request came in.
	e.clock = t0.Add(2 * time.Hour)
	e.call("root")
	waitStored(t, s, 55)
	clock.Set(t0.Add(2 * time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	db := rawDB(t, path)
	for {
		var spans, events int
		if err := db.QueryRow(`SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM events)`).Scan(&spans, &events); err != nil {
			t.Fatal(err)
		}
		if spans == 2 && events == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s %d spans and %d events are left, want the new call's 2 spans and no old event", spans, events)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var runs int
	if err := db.QueryRow(`SELECT count(*) FROM runs WHERE status = 'running'`).Scan(&runs); err != nil || runs != 1 {
		t.Errorf("%d running runs (%v), want the server's run kept", runs, err)
	}
}
