package trace

import (
	"strings"
	"testing"

	"github.com/dspex/dspex/core/event"
)

// Options.Redact is applied to every stored error and to events stored as
// JSON; prompts and answers are kept as they are.
func TestStoredErrorsAreRedacted(t *testing.T) {
	const secret = "hdr-secret-value"
	path := tempDB(t)
	s, bus := openStore(t, path, Options{Redact: func(s string) string { return strings.ReplaceAll(s, secret, "[redacted]") }})
	e := newEmitter(bus, "run1", t0)
	bad := "lm: server error: echoed " + secret
	e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "serve"})
	e.emit(event.ModuleEnd, "m1", "root", &event.ModuleCall{Module: "Predict", Error: bad})
	e.emit(event.LMEnd, "lm1", "m1", &event.LMCall{Model: "m", Error: bad,
		Messages: []event.Message{{Role: "user", Content: "prompt"}}})
	e.emit(event.LMRetry, "lm1", "m1", &event.LMRetryInfo{Model: "m", Attempt: 1, Error: bad})
	e.emit(event.HTTPRequest, "req1", "root", &event.HTTPRequestInfo{Method: "POST", Path: "/v1/predict", Status: 502, Error: bad})
	e.emit(event.EvalExample, "root", "", &event.EvalExampleInfo{Index: 0, Error: bad})
	e.emit(event.RunEnd, "root", "", &event.RunInfo{Name: "serve", Error: bad})
	closeStore(t, s)

	db := rawDB(t, path)
	var n int
	err := db.QueryRow(`SELECT
		(SELECT count(*) FROM runs WHERE instr(error, ?1)) +
		(SELECT count(*) FROM spans WHERE instr(error, ?1)) +
		(SELECT count(*) FROM lm_calls WHERE instr(error, ?1)) +
		(SELECT count(*) FROM events WHERE instr(data, ?1)) +
		(SELECT count(*) FROM eval_results WHERE instr(error, ?1))`, secret).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the secret is stored in %d rows", n)
	}
	err = db.QueryRow(`SELECT
		(SELECT count(*) FROM runs WHERE instr(error, '[redacted]')) +
		(SELECT count(*) FROM spans WHERE instr(error, '[redacted]')) +
		(SELECT count(*) FROM lm_calls WHERE instr(error, '[redacted]')) +
		(SELECT count(*) FROM events WHERE instr(data, '[redacted]')) +
		(SELECT count(*) FROM eval_results WHERE instr(error, '[redacted]'))`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	// run, module span, LM span, LM call, retry and request events, eval result.
	if n != 7 {
		t.Errorf("%d rows hold the redacted error, want 7", n)
	}
}
