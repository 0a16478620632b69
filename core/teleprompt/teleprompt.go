// Package teleprompt holds DSPEx's Go-native optimizers ("teleprompters"
// in DSPy's words): LabeledFewShot, BootstrapFewShot,
// BootstrapFewShotWithRandomSearch, KNNFewShot and COPRO. Each compiles a
// student program into an optimized copy — new demos, new instructions —
// with DSPy's defaults and behaviour as the reference, but concurrently and
// deterministically, publishing every step as an event, and resumable:
// candidate evaluations finished by an interrupted run are not redone (see
// Trials).
package teleprompt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/program"
	"github.com/dspex/dspex/core/pyjson"
)

// Optimizer compiles a student program into an optimized copy; the student
// itself is never changed.
type Optimizer interface {
	// Name is the optimizer's name as DSPy spells it ("BootstrapFewShot").
	Name() string
	Compile(ctx context.Context, student module.Program, trainset []example.Example) (module.Program, error)
}

// ErrNoMetric is returned by optimizers that need a metric and got none.
var ErrNoMetric = errors.New("teleprompt: a metric is required")

// Finished is a candidate evaluated by an earlier run: its score and the
// program state (DSPy's JSON format) that scored it.
type Finished struct {
	Score float64
	State json.RawMessage
}

// Trials evaluates candidate programs for an optimizer. Each evaluation is
// published as an event.OptimizerTrial (with the candidate's id, its state
// and its score; event.OptimizerNewBest when it beats the best so far),
// which the trace store keeps. A candidate whose id is in Resume — results
// read back from an interrupted run — is rebuilt from its stored state
// without any LM call, and not evaluated again. Safe for concurrent use.
type Trials struct {
	// Optimizer names the optimizer in events.
	Optimizer string
	Metric    metric.Metric
	// Valset is what candidates are scored on.
	Valset []example.Example
	// Eval configures each evaluation.
	Eval evaluate.Options
	// Resume holds candidates finished by an earlier run, by id.
	Resume map[string]Finished

	mu     sync.Mutex
	n      int
	best   float64
	scored bool
	reused int
}

// Candidate is one trial's result.
type Candidate struct {
	ID      string
	Program module.Program
	Score   float64
	// Resumed reports that the result came from an earlier run.
	Resumed bool
}

// Run scores the candidate id. build makes the candidate; it is skipped
// when the id was finished by an earlier run, in which case base is cloned
// and given the stored state.
func (t *Trials) Run(ctx context.Context, id string, base module.Program, build func(ctx context.Context) (module.Program, error)) (*Candidate, error) {
	if f, ok := t.Resume[id]; ok {
		prog := base.Clone()
		if err := program.LoadState("trial "+id, f.State, prog); err != nil {
			return nil, fmt.Errorf("teleprompt: resume candidate %s: %w", id, err)
		}
		t.mu.Lock()
		t.reused++
		t.mu.Unlock()
		t.publish(ctx, id, prog, f.Score, true)
		return &Candidate{ID: id, Program: prog, Score: f.Score, Resumed: true}, nil
	}
	prog, err := build(ctx)
	if err != nil {
		return nil, err
	}
	t.propose(ctx, id, prog)
	res, err := evaluate.Run(ctx, prog, t.Valset, t.Metric, t.Eval)
	if err != nil {
		return nil, fmt.Errorf("teleprompt: evaluate candidate %s: %w", id, err)
	}
	t.publish(ctx, id, prog, res.Score, false)
	return &Candidate{ID: id, Program: prog, Score: res.Score}, nil
}

// propose publishes a candidate about to be evaluated: an OptimizerTrial
// event without a score (the trace store keeps it as a proposal).
func (t *Trials) propose(ctx context.Context, id string, prog module.Program) {
	if !event.Enabled(ctx, event.OptimizerTrial) {
		return
	}
	t.mu.Lock()
	trial := t.n + 1
	t.mu.Unlock()
	rec := candidateSummary(id, prog) // the evaluated record carries the state
	event.Publish(ctx, event.OptimizerTrial, event.SpanFrom(ctx), &event.OptimizerTrialInfo{Optimizer: t.Optimizer, Trial: trial, Candidate: rec})
}

// Reused counts candidates taken from Resume.
func (t *Trials) Reused() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reused
}

func (t *Trials) publish(ctx context.Context, id string, prog module.Program, score float64, resumed bool) {
	t.mu.Lock()
	t.n++
	trial := t.n
	newBest := !t.scored || score > t.best
	if newBest {
		t.best, t.scored = score, true
	}
	best := t.best
	t.mu.Unlock()
	if !event.Enabled(ctx, event.OptimizerTrial) && !event.Enabled(ctx, event.OptimizerNewBest) {
		return
	}
	info := &event.OptimizerTrialInfo{
		Optimizer: t.Optimizer,
		Trial:     trial,
		Candidate: CandidateRecord(id, prog, resumed),
		Score:     &score,
		BestScore: &best,
	}
	span := event.SpanFrom(ctx)
	event.Publish(ctx, event.OptimizerTrial, span, info)
	if newBest {
		event.Publish(ctx, event.OptimizerNewBest, span, info)
	}
}

// CandidateRecord describes a candidate for trial events: its id, a summary
// per predictor (instructions, number of demos) and its full state, from
// which a resumed run rebuilds it.
func CandidateRecord(id string, prog module.Program, resumed bool) map[string]any {
	rec := candidateSummary(id, prog)
	var buf bytes.Buffer
	if program.SaveState(&buf, prog) == nil {
		if st, err := pyjson.Decode(buf.Bytes()); err == nil {
			rec["state"] = st // ordered: a resumed candidate's demos keep their key order
		}
	}
	if resumed {
		rec["resumed"] = true
	}
	return rec
}

// candidateSummary is CandidateRecord without the state: the id and each
// predictor's instructions and number of demos.
func candidateSummary(id string, prog module.Program) map[string]any {
	summary := map[string]any{}
	for _, np := range prog.NamedPredictors() {
		summary[np.Name] = map[string]any{
			"instructions": np.Predictor.Signature().Instructions(),
			"demos":        len(np.Predictor.Demos()),
		}
	}
	return map[string]any{"id": id, "predictors": summary}
}

// FinishedFromRecord reads a candidate record (as CandidateRecord wrote it
// and the trace store kept it) back into its id and Finished result.
func FinishedFromRecord(candidate json.RawMessage, score float64) (string, Finished, bool) {
	var rec struct {
		ID    string          `json:"id"`
		State json.RawMessage `json:"state"`
	}
	if json.Unmarshal(candidate, &rec) != nil || rec.ID == "" || len(rec.State) == 0 {
		return "", Finished{}, false
	}
	return rec.ID, Finished{Score: score, State: rec.State}, true
}

// Fingerprint hashes the parts that define an optimization (program file,
// data, optimizer settings), so that a resume can check it continues the
// same one.
func Fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// publishStart and publishEnd bracket an optimization with events.
func publishStart(ctx context.Context, name string, config map[string]any) {
	event.Publish(ctx, event.OptimizerStart, event.SpanFrom(ctx), &event.OptimizerInfo{Optimizer: name, Config: config})
}

func publishEnd(ctx context.Context, name string, best *float64, err error) {
	publishEndExtra(ctx, name, best, err, 0)
}

// publishEndExtra is publishEnd with the calls made beyond a sequential run.
func publishEndExtra(ctx context.Context, name string, best *float64, err error, extra int) {
	info := &event.OptimizerInfo{Optimizer: name, BestScore: best, ExtraCalls: extra}
	if err != nil {
		info.Error = err.Error()
	}
	event.Publish(ctx, event.OptimizerEnd, event.SpanFrom(ctx), info)
}

// resetCopy clones the student and removes its demos, as DSPy's
// reset_copy does.
func resetCopy(p module.Program) module.Program {
	c := p.Clone()
	for _, np := range c.NamedPredictors() {
		np.Predictor.SetDemos(nil)
	}
	return c
}

// progress reports an optimizer's progress on the context's bus.
func progress(ctx context.Context, label string, done, total int) {
	event.Publish(ctx, event.Progress, event.SpanFrom(ctx), &event.ProgressInfo{Label: label, Done: done, Total: total})
}
