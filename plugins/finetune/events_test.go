package finetune

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/dspex/dspex/core/trace"
)

// Options whose names look secret never reach the trace store; the name
// of the variable holding a key does.
func TestPublicOptions(t *testing.T) {
	got := PublicOptions(map[string]string{"base_url": "http://127.0.0.1:1/v1", "api_key": "sk-1", "api_key_env": "OPENAI_API_KEY",
		"Auth_Token": "t", "client_secret": "s", "password": "p", "suffix": "dspex"})
	want := map[string]string{"base_url": "http://127.0.0.1:1/v1", "api_key_env": "OPENAI_API_KEY", "suffix": "dspex"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// JobsFromEvents keeps the last record of each idempotency key, in the
// order the keys first appear; a record without a job id never replaces
// one with it; other kinds and bad data are passed over.
func TestJobsFromEvents(t *testing.T) {
	ev := func(kind string, r any) trace.StoredEvent {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return trace.StoredEvent{Kind: kind, Data: b}
	}
	evs := []trace.StoredEvent{
		ev(string(JobKind), JobRecord{Key: "lm:a", IdempotencyKey: "k1", JobID: "j1", State: StateQueued}),
		ev(string(JobKind), JobRecord{Key: "lm:b", IdempotencyKey: "k2", Error: "not started"}),
		ev(string(JobEventKind), JobEventInfo{Key: "lm:a", JobID: "j1", State: StateRunning}),
		ev(string(JobKind), JobRecord{Key: "lm:a", IdempotencyKey: "k1", JobID: "j1", State: StateRunning}),
		{Kind: string(JobKind), Data: json.RawMessage(`{"idempotency_key": 3}`)},
		ev(string(JobKind), JobRecord{Key: "lm:a", IdempotencyKey: "k1", Error: "watch: unreachable"}),
		ev(string(JobKind), JobRecord{Key: "lm:b", IdempotencyKey: "k2", JobID: "j2", State: StateSucceeded, FineTunedModel: "ft:b"}),
	}
	got := JobsFromEvents(evs)
	want := []JobRecord{
		{Key: "lm:a", IdempotencyKey: "k1", JobID: "j1", State: StateRunning},
		{Key: "lm:b", IdempotencyKey: "k2", JobID: "j2", State: StateSucceeded, FineTunedModel: "ft:b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// The idempotency key changes with each thing the job trains on, and only
// with those.
func TestIdempotencyKey(t *testing.T) {
	base := JobRecord{Key: "lm:m", BaseModel: "m", Backend: "openai", DataHash: "h", Options: map[string]string{"poll_interval": "1"}}
	k := IdempotencyKey("run", base)
	same := base
	same.Options = map[string]string{"poll_interval": "5"}
	same.State = StateRunning
	if IdempotencyKey("run", same) != k {
		t.Error("the key depends on options or state")
	}
	for name, r := range map[string]JobRecord{
		"key": {Key: "lm:n", BaseModel: "m", Backend: "openai", DataHash: "h"}, "base": {Key: "lm:m", BaseModel: "n", Backend: "openai", DataHash: "h"},
		"backend": {Key: "lm:m", BaseModel: "m", Backend: "local", DataHash: "h"}, "data": {Key: "lm:m", BaseModel: "m", Backend: "openai", DataHash: "i"},
	} {
		if IdempotencyKey("run", r) == k {
			t.Errorf("the key does not change with the %s", name)
		}
	}
	if IdempotencyKey("other run", base) == k {
		t.Error("the key does not change with the run")
	}
}
