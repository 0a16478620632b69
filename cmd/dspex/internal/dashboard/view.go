package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dspex/dspex/core/trace"
)

// Limits on what one page lists, so that a long run's page stays light.
const (
	maxRows   = 200 // candidates, evaluated examples
	maxErrors = 50
	maxCalls  = 30
	maxRuns   = 200
)

// runRow is one line of the runs list.
type runRow struct {
	ID, Short, Kind, Program, State string
	Started, Duration               string
	Score, Tokens, Cost             string
	Calls                           int
}

type runsView struct {
	DB    string
	Note  string
	Runs  []runRow
	Fresh string
}

// loadRuns reads the runs list.
func (s *Server) loadRuns(ctx context.Context) (runsView, error) {
	v := runsView{DB: s.cfg.DB, Fresh: time.Now().Format("15:04:05")}
	r, err := s.openReader(ctx)
	if err != nil {
		v.Note = err.Error()
		return v, nil
	}
	runs, err := r.Runs(ctx, trace.ListOptions{Limit: maxRuns})
	if err != nil {
		return v, err
	}
	ids := make([]string, len(runs))
	for i, run := range runs {
		ids[i] = run.ID
	}
	scores, err := r.Scores(ctx, ids)
	if err != nil {
		return v, err
	}
	now := time.Now()
	for _, run := range runs {
		u := run.Usage()
		row := runRow{ID: run.ID, Short: short(run.ID), Kind: run.Name, Program: run.Program, State: run.State(now),
			Started: run.StartedAt.Local().Format("2006-01-02 15:04:05"), Duration: duration(run.Duration()),
			Tokens: fmt.Sprint(u.PromptTokens + u.CompletionTokens), Cost: cost(u), Calls: u.Calls}
		row.Score = scoreText(scores[run.ID], run.Name)
		v.Runs = append(v.Runs, row)
	}
	if len(runs) == 0 {
		v.Note = "No runs yet: run dspex eval, optimize, run or serve with --db " + s.cfg.DB + "."
	}
	return v, nil
}

// scoreText is a run's score for the list: the best trial of an
// optimization, the mean of an evaluation.
func scoreText(sc trace.RunScore, kind string) string {
	switch {
	case sc.Best != nil && (kind == "optimize" || sc.Mean == nil):
		return fmtScore(*sc.Best)
	case sc.Mean != nil:
		return fmtScore(100 * *sc.Mean) // as dspex eval reports it
	}
	return ""
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func cost(u trace.Totals) string {
	c := fmt.Sprintf("$%.4f", u.CostUSD)
	if u.CostUnknownCalls > 0 && u.CostUSD == 0 {
		return "unknown (no prices)"
	}
	if u.CostUnknownCalls > 0 {
		c += fmt.Sprintf(" (+%d unpriced)", u.CostUnknownCalls)
	}
	return c
}

// fmtScore prints a score as the CLI does (percent-like scores keep two
// decimals).
func fmtScore(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprint(f)
	}
	return fmt.Sprintf("%.2f", f)
}

// trialView is one evaluated trial.
type trialView struct {
	N         int // position among evaluated trials, from 1
	Trial     int
	ID        string
	Score     float64
	ScoreText string
	Minibatch bool
	Best      bool
	Resumed   bool
	Params    string
	Error     string
	Preds     []predictorView
}

// predictorView is a predictor's instructions and demos.
type predictorView struct {
	Name         string
	Instructions string
	Demos        []demoView
	NDemos       int
}

type demoView struct{ Fields []field }

type field struct{ Name, Value string }

type errorView struct {
	Time, Kind, Message, Raw, Call string
}

type pluginView struct {
	Name, State, Reason, Exit string
	Restarts, Starts          int
}

type breakerView struct {
	Name, State string
	Changes     []string
}

type callView struct {
	SpanID, Model, Latency, Tokens, Error string
	CacheHit                              bool
}

type evalView struct {
	Index                     int
	Example, Prediction, Note string
	Score                     string
}

type proposalView struct {
	Predictor, Source, Text string
	Index                   int
	Demos                   []demoView
}

type runView struct {
	ID, Short, Kind, Program, State, Error string
	Started, Duration, Updated, Process    string

	HasProgress             bool
	ProgressLabel           string
	ProgressDone, ProgTotal int
	ProgressPct             string

	Optimizer       string
	TrialCount      int
	BestScore       string
	Trials          []trialView
	TrialsCut       int
	ScoreChart      template.HTML
	Best            *trialView
	DemoSets        []proposalView
	Instructions    []proposalView
	EvalCount       int
	EvalMean        string
	Eval            []evalView
	EvalCut         int
	Calls, Hits     int
	HitRate         string
	PromptTokens    int
	CompletionToks  int
	Cost            string
	TokenChart      template.HTML
	LatencyChart    template.HTML
	LatencyP50      string
	LatencyP90      string
	LatencyMax      string
	RecentCalls     []callView
	Errors          []errorView
	ErrorCount      int
	Plugins         []pluginView
	Breakers        []breakerView
	CandidatesForDF []trialView
}

// loadRun reads everything a run's page shows.
func (s *Server) loadRun(ctx context.Context, id string) (*runView, error) {
	r, err := s.openReader(ctx)
	if err != nil {
		return nil, err
	}
	run, err := r.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	v := &runView{ID: run.ID, Short: short(run.ID), Kind: run.Name, Program: run.Program, State: run.State(now), Error: run.Error,
		Started: run.StartedAt.Local().Format("2006-01-02 15:04:05"), Duration: duration(run.Duration()),
		Updated: run.UpdatedAt.Local().Format("15:04:05")}
	if run.Pid > 0 {
		v.Process = fmt.Sprintf("pid %d on %s", run.Pid, run.Host)
		if !run.HeartbeatAt.IsZero() {
			v.Process += ", last heartbeat " + run.HeartbeatAt.Local().Format("15:04:05")
		}
	}
	var meta map[string]any
	_ = json.Unmarshal(run.Meta, &meta)

	if err := s.loadTrials(ctx, r, run.ID, v); err != nil {
		return nil, err
	}
	events, err := r.Events(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	totalTrials := s.loadEvents(events, v)
	if err := s.loadEval(ctx, r, run.ID, v); err != nil {
		return nil, err
	}
	if err := s.loadCalls(ctx, r, run, v); err != nil {
		return nil, err
	}

	// Progress: the bus's, when the run is in this process; else worked
	// out from the store.
	if p, ok, _ := s.live.get(run.ID); ok && p.Total > 0 {
		v.HasProgress, v.ProgressLabel, v.ProgressDone, v.ProgTotal = true, p.Label, p.Done, p.Total
	} else if totalTrials > 0 {
		v.HasProgress, v.ProgressLabel, v.ProgressDone, v.ProgTotal = true, "trials", v.TrialCount, totalTrials
	} else if n, ok := meta["examples"].(float64); ok && n > 0 && run.Name == "eval" {
		v.HasProgress, v.ProgressLabel, v.ProgressDone, v.ProgTotal = true, "examples", v.EvalCount, int(n)
	}
	if v.HasProgress {
		if v.State == "ok" && v.ProgressDone < v.ProgTotal && v.ProgressLabel != "trials" {
			v.ProgressDone = v.ProgTotal
		}
		v.ProgressPct = fmt.Sprintf("%.0f%%", 100*float64(min(v.ProgressDone, v.ProgTotal))/float64(v.ProgTotal))
	}
	return v, nil
}

// candidateRecord is the candidate JSON of a trial (teleprompt's
// CandidateRecord, MIPROv2's extras).
type candidateRecord struct {
	ID         string                     `json:"id"`
	Predictors map[string]json.RawMessage `json:"predictors"`
	State      map[string]json.RawMessage `json:"state"`
	Params     map[string]any             `json:"params"`
	Resumed    bool                       `json:"resumed"`
	Error      string                     `json:"error"`
}

// predictors reads a candidate's instructions and demos: from its saved
// state when the record has one, else from its summary.
func (c candidateRecord) predictors() []predictorView {
	var out []predictorView
	states := c.State
	if _, flat := states["signature"]; flat {
		// A program that is one predictor saves that predictor's state
		// at the top level.
		name := "self"
		for n := range c.Predictors {
			name = n
		}
		raw, _ := json.Marshal(c.State)
		states = map[string]json.RawMessage{name: raw}
	}
	for name, raw := range states {
		if name == "metadata" {
			continue
		}
		var st struct {
			Demos     []map[string]any `json:"demos"`
			Signature struct {
				Instructions string `json:"instructions"`
			} `json:"signature"`
			ExtendedSignature *struct {
				Instructions string `json:"instructions"`
			} `json:"extended_signature"`
		}
		if json.Unmarshal(raw, &st) != nil {
			continue
		}
		p := predictorView{Name: name, Instructions: st.Signature.Instructions, NDemos: len(st.Demos)}
		for _, d := range st.Demos {
			p.Demos = append(p.Demos, demoOf(d))
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		for name, raw := range c.Predictors {
			var sum struct {
				Instructions string `json:"instructions"`
				Demos        int    `json:"demos"`
			}
			if json.Unmarshal(raw, &sum) == nil {
				out = append(out, predictorView{Name: name, Instructions: sum.Instructions, NDemos: sum.Demos})
			}
		}
	}
	slices.SortFunc(out, func(a, b predictorView) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// demoOf lists a demo's fields in name order, each value as text.
func demoOf(d map[string]any) demoView {
	var v demoView
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.Fields = append(v.Fields, field{Name: k, Value: text(d[k])})
	}
	return v
}

// text renders a JSON value as text: strings as they are, the rest as JSON.
func text(x any) string {
	if s, ok := x.(string); ok {
		return s
	}
	b, err := json.Marshal(x)
	if err != nil {
		return fmt.Sprint(x)
	}
	return string(b)
}

func (s *Server) loadTrials(ctx context.Context, r *trace.Reader, id string, v *runView) error {
	trials, err := r.Trials(ctx, id)
	if err != nil {
		return err
	}
	var best *trialView
	for _, t := range trials {
		if t.Kind != trace.TrialEvaluated || t.Score == nil {
			continue
		}
		v.Optimizer = t.Optimizer
		v.TrialCount++
		var rec candidateRecord
		_ = json.Unmarshal(t.Candidate, &rec)
		tv := trialView{N: v.TrialCount, Trial: t.Trial, ID: cmp.Or(rec.ID, fmt.Sprint(t.Trial)), Score: *t.Score,
			ScoreText: fmtScore(*t.Score), Minibatch: t.Minibatch, Resumed: rec.Resumed, Error: rec.Error,
			Preds: rec.predictors()}
		if len(rec.Params) > 0 {
			b, _ := json.Marshal(rec.Params)
			tv.Params = string(b)
		}
		v.Trials = append(v.Trials, tv)
		if !t.Minibatch && (best == nil || tv.Score > best.Score) {
			b := tv
			best = &b
		}
	}
	if best != nil {
		v.BestScore = best.ScoreText
		for i := range v.Trials {
			v.Trials[i].Best = v.Trials[i].N == best.N
		}
		best.Best = true
		v.Best = best
	}
	v.ScoreChart = scoreChart(v.Trials)
	v.CandidatesForDF = v.Trials
	if len(v.Trials) > maxRows {
		v.TrialsCut = len(v.Trials) - maxRows
		v.Trials = v.Trials[len(v.Trials)-maxRows:]
	}
	return nil
}

// loadEvents reads what the events table holds: optimizer config,
// proposals, errors, plugin and breaker changes. It returns the number of
// trials the optimizer plans, 0 when unknown.
func (s *Server) loadEvents(events []trace.StoredEvent, v *runView) (totalTrials int) {
	plugins := map[string]*pluginView{}
	breakers := map[string]*breakerView{}
	for _, e := range events {
		var d map[string]any
		_ = json.Unmarshal(e.Data, &d)
		str := func(k string) string { return text(cmp.Or(d[k], any(""))) }
		at := e.Time.Local().Format("15:04:05.000")
		switch e.Kind {
		case "optimizer.start":
			if cfg, ok := d["config"].(map[string]any); ok {
				if n, ok := cfg["num_trials"].(float64); ok {
					totalTrials = int(n)
				}
			}
		case "optimizer.end":
			if msg := str("error"); msg != "" {
				v.addError(errorView{Time: at, Kind: "optimizer", Message: msg})
			}
		case "optimizer.demo_set":
			p := proposalView{Predictor: str("predictor"), Source: str("source")}
			if n, ok := d["index"].(float64); ok {
				p.Index = int(n)
			}
			if demos, ok := d["demos"].([]any); ok {
				for _, x := range demos {
					if m, ok := x.(map[string]any); ok {
						p.Demos = append(p.Demos, demoOf(m))
					}
				}
			}
			v.DemoSets = append(v.DemoSets, p)
		case "optimizer.instruction":
			p := proposalView{Predictor: str("predictor"), Text: str("instruction"), Source: str("tip")}
			if n, ok := d["index"].(float64); ok {
				p.Index = int(n)
			}
			if fb := str("fallback"); fb != "" {
				p.Source = "fallback: " + fb
			}
			v.Instructions = append(v.Instructions, p)
		case "adapter.parse_error", "adapter.fallback":
			v.addError(errorView{Time: at, Kind: e.Kind + " (" + str("adapter") + ")", Message: str("error"), Raw: str("raw"), Call: e.SpanID})
		case "lm.retry":
			v.addError(errorView{Time: at, Kind: "lm.retry (attempt " + str("attempt") + ")", Message: str("error")})
		case "event.subscriber":
			v.addError(errorView{Time: at, Kind: "subscriber " + str("subscriber"), Message: str("problem")})
		case "lm.breaker":
			name := str("name")
			b := breakers[name]
			if b == nil {
				b = &breakerView{Name: name}
				breakers[name] = b
			}
			b.State = str("to")
			b.Changes = append(b.Changes, at+" "+str("from")+" → "+str("to"))
		case "plugin.start", "plugin.exit", "plugin.restart", "plugin.give_up", "plugin.health":
			name := str("plugin")
			p := plugins[name]
			if p == nil {
				p = &pluginView{Name: name}
				plugins[name] = p
			}
			if st := str("state"); st != "" {
				p.State = st
			}
			switch e.Kind {
			case "plugin.start":
				p.Starts++
				if p.State == "" {
					p.State = "running"
				}
			case "plugin.restart":
				p.Restarts++
				p.Reason = str("reason")
			case "plugin.exit":
				p.Exit = str("exit")
				if r := str("reason"); r != "" {
					p.Reason = r
				}
			case "plugin.give_up":
				p.State = "gave up"
				p.Reason = str("reason")
			case "plugin.health":
				if msg := str("error"); msg != "" {
					p.Reason = "health: " + msg
				}
			}
		}
	}
	for _, p := range plugins {
		v.Plugins = append(v.Plugins, *p)
	}
	slices.SortFunc(v.Plugins, func(a, b pluginView) int { return strings.Compare(a.Name, b.Name) })
	for _, b := range breakers {
		if len(b.Changes) > 10 {
			b.Changes = b.Changes[len(b.Changes)-10:]
		}
		v.Breakers = append(v.Breakers, *b)
	}
	slices.SortFunc(v.Breakers, func(a, b breakerView) int { return strings.Compare(a.Name, b.Name) })
	return totalTrials
}

func (v *runView) addError(e errorView) {
	v.ErrorCount++
	if len(v.Errors) < maxErrors {
		v.Errors = append(v.Errors, e)
	}
}

func (s *Server) loadEval(ctx context.Context, r *trace.Reader, id string, v *runView) error {
	results, err := r.EvalResults(ctx, id)
	if err != nil {
		return err
	}
	v.EvalCount = len(results)
	sum := 0.0
	for _, e := range results {
		sum += e.Score
		if e.Error != "" {
			v.addError(errorView{Time: e.Time.Local().Format("15:04:05.000"), Kind: fmt.Sprintf("example %d", e.Index),
				Message: e.Error, Raw: compactJSON(e.Prediction)})
		}
	}
	if len(results) > 0 {
		// Mean metric × 100, as dspex eval (and DSPy) report it.
		v.EvalMean = fmtScore(100 * sum / float64(len(results)))
	}
	// An evaluation lists its examples; an optimization has too many
	// (every candidate's), and lists its candidates instead.
	if v.Kind == "optimize" || v.TrialCount > 0 {
		return nil
	}
	if len(results) > maxRows {
		v.EvalCut = len(results) - maxRows
		results = results[:maxRows]
	}
	for _, e := range results {
		v.Eval = append(v.Eval, evalView{Index: e.Index, Example: compactJSON(e.Example), Prediction: compactJSON(e.Prediction),
			Note: cmp.Or(e.Error, e.Feedback), Score: fmtScore(e.Score)})
	}
	return nil
}

// compactJSON shows a JSON object of fields as "name: value" lines.
func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return string(raw)
	}
	var b strings.Builder
	for i, f := range demoOf(m).Fields {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(f.Name + ": " + f.Value)
	}
	return b.String()
}

func (s *Server) loadCalls(ctx context.Context, r *trace.Reader, run trace.Run, v *runView) error {
	calls, err := r.LMCalls(ctx, trace.LMCallQuery{RunID: run.ID, Limit: -1, NoContent: true})
	if err != nil {
		return err
	}
	u := run.Usage()
	v.Calls, v.Hits, v.PromptTokens, v.CompletionToks, v.Cost = u.Calls, u.CacheHits, u.PromptTokens, u.CompletionTokens, cost(u)
	if u.Calls > 0 {
		v.HitRate = fmt.Sprintf("%.0f%%", 100*float64(u.CacheHits)/float64(u.Calls))
	}
	var lat []float64
	for i, c := range calls { // newest first
		if c.Ended() && !c.CacheHit && c.Error == "" {
			lat = append(lat, c.LatencyMS)
		}
		if c.Error != "" {
			v.addError(errorView{Time: c.CreatedAt.Local().Format("15:04:05.000"), Kind: "LM call (" + cmp.Or(c.ErrorKind, "error") + ")",
				Message: c.Error, Call: c.SpanID})
		}
		if i < maxCalls {
			cv := callView{SpanID: c.SpanID, Model: c.Model, Tokens: fmt.Sprint(c.TotalTokens), CacheHit: c.CacheHit, Error: c.Error}
			if c.Ended() {
				cv.Latency = fmt.Sprintf("%.0f ms", c.LatencyMS)
			} else {
				cv.Latency = "running"
			}
			v.RecentCalls = append(v.RecentCalls, cv)
		}
	}
	if len(lat) > 0 {
		sorted := slices.Clone(lat)
		slices.Sort(sorted)
		q := func(p float64) string { return fmt.Sprintf("%.0f ms", sorted[int(p*float64(len(sorted)-1))]) }
		v.LatencyP50, v.LatencyP90, v.LatencyMax = q(0.5), q(0.9), q(1)
	}
	v.LatencyChart = latencyChart(lat)
	slices.Reverse(calls)
	v.TokenChart = tokenChart(calls)
	return nil
}
