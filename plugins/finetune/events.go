package finetune

import (
	"context"
	"encoding/json"
	"maps"
	"strings"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/trace"
)

// Event kinds this package publishes. The trace store keeps both in its
// events table (dspex traces show RUN lists them); JobsFromEvents reads the
// job records back for a resumed run.
const (
	// JobKind: a job was started, found again, changed state or ended
	// (*JobRecord, the whole record each time).
	JobKind event.Kind = "finetune.job"
	// JobEventKind: an event of a watched job (*JobEventInfo).
	JobEventKind event.Kind = "finetune.job_event"
)

// JobRecord is what the trace store keeps of a job: enough to follow it by
// id after a restart of the plugin or of dspex, never starting it again.
type JobRecord struct {
	// Key names the job within the optimization: "lm:<model>" (multitask,
	// one job per LM) or "predictor:<name>".
	Key string `json:"key"`
	// IdempotencyKey is derived from the run id, Key, base model, backend
	// and the training data's hash (Config.RunID).
	IdempotencyKey string `json:"idempotency_key"`
	JobID          string `json:"job_id,omitempty"`
	Backend        string `json:"backend"`
	// Options are the backend's options less any that look secret
	// (PublicOptions).
	Options   map[string]string `json:"options,omitempty"`
	BaseModel string            `json:"base_model"`
	// Predictors are the student's predictors that get the job's model.
	Predictors []string `json:"predictors"`
	// DataHash is the training file's SHA-256; Examples its lines.
	DataHash string `json:"data_hash"`
	Examples int    `json:"examples"`
	State    string `json:"state,omitempty"`
	// ProviderState is the backend's word for State.
	ProviderState  string  `json:"provider_state,omitempty"`
	Progress       float64 `json:"progress,omitempty"`
	FineTunedModel string  `json:"fine_tuned_model,omitempty"`
	Error          string  `json:"error,omitempty"`
}

// JobEventInfo is one event of a watched job.
type JobEventInfo struct {
	Key      string             `json:"key"`
	JobID    string             `json:"job_id"`
	State    string             `json:"state"`
	Progress float64            `json:"progress,omitempty"`
	Message  string             `json:"message,omitempty"`
	Step     int64              `json:"step,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
}

// PublicOptions returns opts less the options whose names look secret (a
// key, token, secret or password; api_key_env, which names a variable,
// stays).
func PublicOptions(opts map[string]string) map[string]string {
	out := maps.Clone(opts)
	for k := range out {
		l := strings.ToLower(k)
		if strings.HasSuffix(l, "_env") {
			continue
		}
		for _, w := range []string{"key", "token", "secret", "password"} {
			if strings.Contains(l, w) {
				delete(out, k)
				break
			}
		}
	}
	return out
}

// Durable makes the trace store commit a job record at once rather than
// with its next batch, so a dspex killed right after a job started leaves
// the job's id for --resume.
func (*JobRecord) Durable() bool { return true }

// JobsFromEvents reads job records back from a run's stored events (those
// of JobKind; others are ignored): the last record of each idempotency
// key, in the order the keys first appear.
func JobsFromEvents(events []trace.StoredEvent) []JobRecord {
	var order []string
	last := map[string]JobRecord{}
	for _, ev := range events {
		if ev.Kind != string(JobKind) {
			continue
		}
		var r JobRecord
		if json.Unmarshal(ev.Data, &r) != nil || r.IdempotencyKey == "" {
			continue
		}
		if _, seen := last[r.IdempotencyKey]; !seen {
			order = append(order, r.IdempotencyKey)
		}
		// A record without a job id never replaces one with it.
		if r.JobID == "" && last[r.IdempotencyKey].JobID != "" {
			continue
		}
		last[r.IdempotencyKey] = r
	}
	out := make([]JobRecord, 0, len(order))
	for _, k := range order {
		out = append(out, last[k])
	}
	return out
}

func publish(ctx context.Context, kind event.Kind, data any) {
	event.Publish(ctx, kind, event.SpanFrom(ctx), data)
}

func progress(ctx context.Context, label string, done, total int) {
	publish(ctx, event.Progress, &event.ProgressInfo{Label: label, Done: done, Total: total})
}
