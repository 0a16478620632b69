package finetune

import (
	"encoding/json"
	"testing"

	"github.com/dspex/dspex/core/trace"
)

// FuzzParseStateModels: any bytes give models or an error, never a panic,
// and every model read is a non-empty string.
func FuzzParseStateModels(f *testing.F) {
	f.Add([]byte(`{"signature": {"instructions": "", "fields": []}, "demos": [], "lm": {"model": "ft:x"}}`))
	f.Add([]byte(`{"a": {"lm": {"model": "m"}}, "b": {"lm": null}, "metadata": {}}`))
	f.Add([]byte(`[1, 2]`))
	f.Add([]byte(`{"a": {"lm": {"model": 3}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseStateModels(data)
		if err != nil {
			return
		}
		for k, v := range m {
			if v == "" {
				t.Errorf("predictor %q: empty model", k)
			}
		}
	})
}

// FuzzJobsFromEvents: any event data gives records, each with an
// idempotency key, one per key.
func FuzzJobsFromEvents(f *testing.F) {
	f.Add([]byte(`{"key":"lm:m","idempotency_key":"k","job_id":"j","state":"running"}`), []byte(`{"idempotency_key":"k","state":"succeeded"}`))
	f.Add([]byte(`null`), []byte(`{"idempotency_key":3}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		evs := []trace.StoredEvent{{Kind: string(JobKind), Data: json.RawMessage(a)}, {Kind: string(JobKind), Data: json.RawMessage(b)}}
		seen := map[string]bool{}
		for _, r := range JobsFromEvents(evs) {
			if r.IdempotencyKey == "" || seen[r.IdempotencyKey] {
				t.Errorf("record %+v", r)
			}
			seen[r.IdempotencyKey] = true
		}
	})
}
