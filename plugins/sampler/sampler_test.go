package sampler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/plugins/sampler/samplertest"
)

func TestRequestConversion(t *testing.T) {
	req, err := createRequest(StudyConfig{
		ID:      "s",
		Space:   []Param{Indices("0_predictor_instruction", 3), {Name: "k", Int: &IntRange{Low: 1, High: 9}}},
		Seed:    9,
		Sampler: "random",
		Options: map[string]string{"constant_liar": "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := req.GetSpace()[0].GetCategorical().GetChoices(); !cmp.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("choices %v", got)
	}
	if req.GetDirection() != "maximize" || req.GetSamplerOptions()["sampler"] != "random" || req.GetSamplerOptions()["constant_liar"] != "true" {
		t.Errorf("request %v", req)
	}
	for _, bad := range []Param{{Name: "none"}, {Name: "two", Choices: []string{"a"}, Int: &IntRange{}}} {
		if _, err := createRequest(StudyConfig{Space: []Param{bad}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	p := Params{"c": ChoiceValue("2"), "i": IntValue(-3), "f": FloatValue(0.5)}
	if got := fromProto(toProto(p)); !cmp.Equal(got, p) {
		t.Errorf("round trip %v", got)
	}
	if i, err := p.Index("c"); err != nil || i != 2 {
		t.Errorf("Index = %d, %v", i, err)
	}
	e := &Error{Op: "ask", Study: "s", Err: status.Error(codes.NotFound, "no study")}
	if !errors.Is(e, ErrNotFound) || errors.Is(e, ErrInvalid) || status.Code(e) != codes.NotFound {
		t.Errorf("error mapping of %v", e)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var sizes = []int{5, 4, 3, 6}

// mipro is MIPROv2's study for two predictors.
func mipro(id string) StudyConfig {
	return StudyConfig{ID: id, Seed: 9, Space: []Param{
		Indices("0_predictor_instruction", sizes[0]), Indices("0_predictor_demos", sizes[1]),
		Indices("1_predictor_instruction", sizes[2]), Indices("1_predictor_demos", sizes[3]),
	}}
}

func indices(t *testing.T, p Params) [4]int {
	t.Helper()
	var out [4]int
	for i, name := range []string{"0_predictor_instruction", "0_predictor_demos", "1_predictor_instruction", "1_predictor_demos"} {
		n, err := p.Index(name)
		if err != nil || n < 0 || n >= sizes[i] {
			t.Fatalf("params %v: %s = %d, %v", p, name, n, err)
		}
		out[i] = n
	}
	return out
}

func score(idx [4]int) float64 {
	s := float64(idx[0]+idx[1]+idx[2]+idx[3]) / 20
	if idx[0] == 2 {
		s += 0.5
	}
	return s
}

type round struct {
	Number int64
	Idx    [4]int
}

// rounds asks and tells n times, appending what it told to log.
func rounds(t *testing.T, c *Client, study string, n int, log *[]PastTrial) []round {
	t.Helper()
	var out []round
	for range n {
		tr, err := c.Ask(ctxTimeout(t, 30*time.Second), study)
		if err != nil {
			t.Fatal(err)
		}
		idx := indices(t, tr.Params)
		if err := c.Tell(ctxTimeout(t, 30*time.Second), study, tr.Number, score(idx), Complete); err != nil {
			t.Fatal(err)
		}
		*log = append(*log, PastTrial{Params: tr.Params, Value: score(idx)})
		out = append(out, round{tr.Number, idx})
	}
	return out
}

func askN(t *testing.T, c *Client, study string, n int) []Trial {
	t.Helper()
	var out []Trial
	for range n {
		tr, err := c.Ask(ctxTimeout(t, 30*time.Second), study)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tr)
	}
	return out
}

func tellAll(t *testing.T, c *Client, study string, trials []Trial) {
	t.Helper()
	for _, tr := range trials {
		if err := c.Tell(ctxTimeout(t, 30*time.Second), study, tr.Number, score(indices(t, tr.Params)), Complete); err != nil {
			t.Fatal(err)
		}
	}
}

// The real Python plugin through the bridge host: ask/tell, errors, and a
// SIGKILL with two trials in flight, after which the supervisor restarts the
// plugin, Go rebuilds the study from its log (the two trials as Running),
// tells the two under their numbers, and the next asks are those of an
// uninterrupted study.
func TestPythonSamplerReplayAfterKill(t *testing.T) {
	host := samplertest.Host(t)
	c, p, err := Open(host, "")
	if err != nil {
		t.Fatal(err)
	}

	baseline := PastTrial{Params: Params{}, Value: 0.3}
	for _, prm := range mipro("").Space {
		baseline.Params[prm.Name] = ChoiceValue("0")
	}
	// The uninterrupted study: baseline, 14 rounds, then the 4 to compare.
	var refLog []PastTrial
	if _, err := c.CreateStudy(ctxTimeout(t, 60*time.Second), mipro("ref")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Replay(ctxTimeout(t, 30*time.Second), "ref", []PastTrial{baseline}); err != nil || n != 1 {
		t.Fatalf("replay baseline: %d, %v", n, err)
	}
	before := rounds(t, c, "ref", 14, &refLog)
	// Two trials in flight (asked, not yet told), told after the next ask.
	refFlight := askN(t, c, "ref", 2)
	refNext := askN(t, c, "ref", 1)
	tellAll(t, c, "ref", append(refFlight, refNext...))
	want := rounds(t, c, "ref", 4, &refLog)
	best, found, err := c.Best(ctxTimeout(t, 30*time.Second), "ref")
	if err != nil || !found || best.Value < 0.3 {
		t.Fatalf("best: %+v, %v, %v", best, found, err)
	}

	// The study that the kill interrupts, and Go's log of it.
	log := []PastTrial{baseline}
	if _, err := c.CreateStudy(ctxTimeout(t, 30*time.Second), mipro("s")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Replay(ctxTimeout(t, 30*time.Second), "s", log); err != nil {
		t.Fatal(err)
	}
	if got := rounds(t, c, "s", 14, &log); !cmp.Equal(got, before) {
		t.Fatalf("the same seed and history asked differently:\n%s", cmp.Diff(before, got))
	}

	// Errors come back typed, with their gRPC status.
	err = c.Tell(ctxTimeout(t, 30*time.Second), "s", 99, 1, Complete)
	if !errors.Is(err, ErrNotFound) || status.Code(err) != codes.NotFound {
		t.Errorf("tell trial 99: %v, want ErrNotFound", err)
	}
	_, err = c.CreateStudy(ctxTimeout(t, 30*time.Second), StudyConfig{ID: "bad", Space: []Param{Categorical("x")}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("create with an empty categorical: %v, want ErrInvalid", err)
	}

	flight := askN(t, c, "s", 2)
	if !cmp.Equal(flight, refFlight) {
		t.Fatalf("trials in flight differ:\n%s", cmp.Diff(refFlight, flight))
	}
	for _, tr := range flight {
		log = append(log, PastTrial{Params: tr.Params, State: Running})
	}

	pid := p.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for p.Pid() == pid || p.Pid() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the plugin did not restart within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.WaitReady(ctxTimeout(t, 60*time.Second)); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if _, err := c.Ask(ctxTimeout(t, 30*time.Second), "s"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ask after the restart: %v, want ErrNotFound (the study died with the process)", err)
	}
	if err := c.Rebuild(ctxTimeout(t, 60*time.Second), mipro("s"), log); err != nil {
		t.Fatal(err)
	}
	// The trials that were in flight are told under their numbers.
	next := askN(t, c, "s", 1)
	if !cmp.Equal(next, refNext) {
		t.Errorf("first ask after the replay: %v, an uninterrupted study asked %v", next, refNext)
	}
	tellAll(t, c, "s", append(flight, next...))
	if got := rounds(t, c, "s", 4, &log); !cmp.Equal(got, want) {
		t.Errorf("after the replay the study asked differently from an uninterrupted one:\n%s", cmp.Diff(want, got))
	}
}

// fakeDriver answers Ask from a script and records the calls it gets.
type fakeDriver struct {
	asks  []Trial
	calls []string
}

func (f *fakeDriver) CreateStudy(_ context.Context, cfg StudyConfig) (string, error) {
	f.calls = append(f.calls, "create "+cfg.ID)
	return cfg.ID, nil
}

func (f *fakeDriver) Ask(context.Context, string) (Trial, error) {
	t := f.asks[0]
	f.asks = f.asks[1:]
	f.calls = append(f.calls, fmt.Sprintf("ask %d", t.Number))
	return t, nil
}

func (f *fakeDriver) Tell(_ context.Context, _ string, n int64, v float64, s State) error {
	f.calls = append(f.calls, fmt.Sprintf("tell %d %v %s", n, v, s))
	return nil
}

func (f *fakeDriver) Replay(_ context.Context, _ string, trials []PastTrial) (int64, error) {
	f.calls = append(f.calls, fmt.Sprintf("replay %d", len(trials)))
	return 0, nil
}

// Redrive makes the logged calls again in their order, and refuses an Ask
// that answers other than the log.
func TestRedrive(t *testing.T) {
	p0, p1 := Params{"x": ChoiceValue("0")}, Params{"x": ChoiceValue("1")}
	ops := []Op{
		{Kind: OpReplay, Trials: []PastTrial{{Params: p0, Value: 0.5}}},
		{Kind: OpAsk, Number: 1, Params: p1},
		{Kind: OpAsk, Number: 2, Params: p0},
		{Kind: OpTell, Number: 2, Value: 0.25},
		{Kind: OpTell, Number: 1, Value: 0.75, State: Complete},
		{Kind: OpReplay, Trials: []PastTrial{{Params: p1, Value: 0.5}}},
		{Kind: OpAsk, Number: 4, Params: p1},
	}
	cfg := StudyConfig{ID: "s", RNG: RNGContinuous}
	f := &fakeDriver{asks: []Trial{{1, p1}, {2, p0}, {4, p1}}}
	if err := Redrive(context.Background(), f, cfg, ops); err != nil {
		t.Fatal(err)
	}
	want := []string{"create s", "replay 1", "ask 1", "ask 2", "tell 2 0.25 ", "tell 1 0.75 complete", "replay 1", "ask 4"}
	if diff := cmp.Diff(want, f.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	f = &fakeDriver{asks: []Trial{{1, p0}}}
	err := Redrive(context.Background(), f, cfg, ops[1:2])
	if !errors.Is(err, ErrDiverged) {
		t.Errorf("an Ask that answers otherwise: %v, want ErrDiverged", err)
	}
	if err := Redrive(context.Background(), f, StudyConfig{}, nil); err == nil {
		t.Error("Redrive without a study ID succeeded")
	}
	if err := Redrive(context.Background(), &fakeDriver{}, cfg, []Op{{Kind: "drop"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown op: %v, want ErrInvalid", err)
	}
	for _, tc := range []struct {
		cfg  StudyConfig
		want bool
	}{
		{StudyConfig{}, false},
		{StudyConfig{RNG: RNGTrial}, false},
		{StudyConfig{RNG: " Continuous"}, true},
		{StudyConfig{Options: map[string]string{"rng": "continuous"}}, true},
		{StudyConfig{RNG: RNGTrial, Options: map[string]string{"rng": "continuous"}}, false},
	} {
		if got := tc.cfg.Continuous(); got != tc.want {
			t.Errorf("%+v: Continuous() = %v", tc.cfg, got)
		}
	}
}

// fusedDriver is a fakeDriver that also takes fused calls.
type fusedDriver struct{ fakeDriver }

func (f *fusedDriver) AskAfter(ctx context.Context, study string, before []Op) (Trial, error) {
	f.calls = append(f.calls, fmt.Sprintf("after %s:", kinds(before)))
	return f.Ask(ctx, study)
}

func (f *fusedDriver) ReplayAfter(ctx context.Context, study string, before []Op, trials []PastTrial) (int64, error) {
	f.calls = append(f.calls, fmt.Sprintf("after %s:", kinds(before)))
	return f.Replay(ctx, study, trials)
}

func kinds(ops []Op) string {
	var out []string
	for _, op := range ops {
		if op.Kind == OpTell {
			out = append(out, fmt.Sprintf("tell %d", op.Number))
		} else {
			out = append(out, fmt.Sprintf("replay %d", len(op.Trials)))
		}
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// Redrive through a FusedDriver makes the same calls in the same order,
// each run of tells and replays riding on the ask after it, those after
// the last ask on one ReplayAfter; and still refuses a diverged ask.
func TestRedriveFused(t *testing.T) {
	p0, p1 := Params{"x": ChoiceValue("0")}, Params{"x": ChoiceValue("1")}
	ops := []Op{
		{Kind: OpReplay, Trials: []PastTrial{{Params: p0, Value: 0.5}}},
		{Kind: OpAsk, Number: 1, Params: p1},
		{Kind: OpAsk, Number: 2, Params: p0},
		{Kind: OpTell, Number: 2, Value: 0.25},
		{Kind: OpTell, Number: 1, Value: 0.75, State: Complete},
		{Kind: OpReplay, Trials: []PastTrial{{Params: p1, Value: 0.5}}},
		{Kind: OpAsk, Number: 4, Params: p1},
	}
	cfg := StudyConfig{ID: "s", RNG: RNGContinuous}
	for _, tc := range []struct {
		name string
		ops  []Op
		want []string
	}{
		{"ending with an ask", ops, []string{"create s", "after [replay 1]:", "ask 1", "after []:", "ask 2",
			"after [tell 2, tell 1, replay 1]:", "ask 4"}},
		{"ending with a replay", ops[:6], []string{"create s", "after [replay 1]:", "ask 1", "after []:", "ask 2",
			"after [tell 2, tell 1]:", "replay 1"}},
		{"ending with a tell", ops[:5], []string{"create s", "after [replay 1]:", "ask 1", "after []:", "ask 2",
			"after [tell 2, tell 1]:", "replay 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fusedDriver{fakeDriver{asks: []Trial{{1, p1}, {2, p0}, {4, p1}}}}
			if err := Redrive(context.Background(), f, cfg, tc.ops); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
	f := &fusedDriver{fakeDriver{asks: []Trial{{1, p1}, {3, p0}}}}
	if err := Redrive(context.Background(), f, cfg, ops[:3]); !errors.Is(err, ErrDiverged) {
		t.Errorf("an ask that answers otherwise: %v, want ErrDiverged", err)
	}
	if err := Redrive(context.Background(), &fusedDriver{}, cfg, []Op{{Kind: "drop"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown op: %v, want ErrInvalid", err)
	}
}

// oldPlugin answers as a plugin that predates fused calls would: it
// ignores before (applied 0). It records the calls it gets.
type oldPlugin struct {
	pluginv1.SamplerClient
	calls *[]string
}

func (o oldPlugin) Ask(_ context.Context, req *pluginv1.AskRequest, _ ...grpc.CallOption) (*pluginv1.AskResponse, error) {
	*o.calls = append(*o.calls, fmt.Sprintf("ask carrying %d", len(req.GetBefore())))
	return &pluginv1.AskResponse{TrialNumber: 3}, nil
}

func (o oldPlugin) Tell(_ context.Context, req *pluginv1.TellRequest, _ ...grpc.CallOption) (*pluginv1.TellResponse, error) {
	*o.calls = append(*o.calls, fmt.Sprintf("tell %d", req.GetTrialNumber()))
	return &pluginv1.TellResponse{}, nil
}

// CreateStudy says it takes fused calls for seed 1 (as no plugin that
// ignores them should).
func (o oldPlugin) CreateStudy(_ context.Context, req *pluginv1.CreateStudyRequest, _ ...grpc.CallOption) (*pluginv1.CreateStudyResponse, error) {
	return &pluginv1.CreateStudyResponse{StudyId: req.GetStudyId(), FusedCalls: req.GetSeed() == 1}, nil
}

// A fused call goes only to a plugin whose study said it takes them, else
// each change is a call of its own; a plugin that answers a fused call
// without making its changes is an error.
func TestFusedCallsNeedThePlugin(t *testing.T) {
	var calls []string
	c := &Client{rpc: oldPlugin{calls: &calls}}
	if _, err := c.AskAfter(t.Context(), "s", []Op{{Kind: OpAsk}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an ask carried by an ask: %v, want ErrInvalid", err)
	}
	space := []Param{Indices("p", 2)}
	if _, err := c.CreateStudy(t.Context(), StudyConfig{ID: "s", Seed: 1, Space: space}); err != nil {
		t.Fatal(err)
	}
	if !c.Fused("s") || c.Fused("other") {
		t.Fatalf("Fused(s) = %v, Fused(other) = %v", c.Fused("s"), c.Fused("other"))
	}
	_, err := c.TellAndAsk(t.Context(), "s", 2, 0.5, Complete)
	var e *Error
	if !errors.Is(err, ErrUnfused) || !errors.As(err, &e) || e.Applied != 0 {
		t.Errorf("a plugin that made no change: %v, want ErrUnfused with Applied 0", err)
	}
	if _, err := c.CreateStudy(t.Context(), StudyConfig{ID: "s", Seed: 2, Space: space}); err != nil {
		t.Fatal(err)
	}
	if tr, err := c.TellAndAsk(t.Context(), "s", 2, 0.5, Complete); err != nil || tr.Number != 3 {
		t.Fatalf("TellAndAsk without fused calls: %v, %v", tr, err)
	}
	if want := []string{"ask carrying 1", "tell 2", "ask carrying 0"}; !cmp.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}

// The real plugin: fused calls (TellAndAsk, AskAfter, ReplayAfter) ask
// what the plain calls ask, with trials in flight and full evaluations
// added; the fallback (a client that did not create the study) makes each
// change as a call of its own with the same result; a refused change
// makes none; and after a SIGKILL a continuous study re-driven with fused
// calls asks on as the uninterrupted one.
func TestPythonSamplerFusedCalls(t *testing.T) {
	host := samplertest.Host(t)
	c, p, err := Open(host, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 120*time.Second)
	cfg := func(id string) StudyConfig {
		cfg := mipro(id)
		cfg.RNG = RNGContinuous
		cfg.Options = map[string]string{"n_startup_trials": "4"}
		return cfg
	}
	baseline := PastTrial{Params: Params{}, Value: 0.3}
	for _, prm := range mipro("").Space {
		baseline.Params[prm.Name] = ChoiceValue("0")
	}
	// step drives one study through MIPROv2's calls: two trials in flight,
	// told in order, then a full evaluation of the second; as plain calls,
	// or carried by the next ask (fused: c; fallback: another client).
	type driver struct {
		id      string
		fused   *Client // nil: plain calls
		waiting []Op
		log     []Op
	}
	ask := func(d *driver) Trial {
		t.Helper()
		var tr Trial
		var err error
		if d.fused != nil {
			tr, err = d.fused.AskAfter(ctx, d.id, d.waiting)
		} else {
			tr, err = c.Ask(ctx, d.id)
		}
		if err != nil {
			t.Fatal(err)
		}
		d.waiting = nil
		d.log = append(d.log, Op{Kind: OpAsk, Number: tr.Number, Params: tr.Params})
		return tr
	}
	change := func(d *driver, op Op) {
		t.Helper()
		if d.fused != nil {
			d.waiting = append(d.waiting, op)
		} else if err := makeOne(ctx, c, d.id, op); err != nil {
			t.Fatal(err)
		}
		d.log = append(d.log, op)
	}
	round := func(d *driver) {
		a, b := ask(d), ask(d)
		change(d, Op{Kind: OpTell, Number: a.Number, Value: score(indices(t, a.Params))})
		change(d, Op{Kind: OpTell, Number: b.Number, Value: score(indices(t, b.Params))})
		change(d, Op{Kind: OpReplay, Trials: []PastTrial{{Params: b.Params, Value: score(indices(t, b.Params)) - 0.1}}})
	}
	other := New(p.Conn()) // never created a study: falls back to plain calls
	plain, fused, fallback := &driver{id: "plain"}, &driver{id: "fused", fused: c}, &driver{id: "fallback", fused: other}
	for _, d := range []*driver{plain, fused, fallback} {
		if _, err := c.CreateStudy(ctx, cfg(d.id)); err != nil {
			t.Fatal(err)
		}
		change(d, Op{Kind: OpReplay, Trials: []PastTrial{baseline}})
		for range 6 {
			round(d)
		}
	}
	if !c.Fused("fused") || other.Fused("fallback") {
		t.Fatalf("Fused: %v (the creating client), %v (another)", c.Fused("fused"), other.Fused("fallback"))
	}
	if diff := cmp.Diff(plain.log, fused.log); diff != "" {
		t.Fatalf("fused calls asked otherwise (-plain +fused):\n%s", diff)
	}
	if diff := cmp.Diff(plain.log, fallback.log); diff != "" {
		t.Fatalf("the fallback asked otherwise (-plain +fallback):\n%s", diff)
	}
	// The waiting changes on a last replay.
	n, err := c.ReplayAfter(ctx, "fused", fused.waiting, nil)
	if err != nil || n != int64(1+6*3) {
		t.Fatalf("ReplayAfter: %d trials, %v; want 19", n, err)
	}
	fused.waiting = nil

	// A refused change (trial 99) makes none of them and asks nothing.
	_, err = c.AskAfter(ctx, "fused", []Op{{Kind: OpReplay, Trials: []PastTrial{baseline}}, {Kind: OpTell, Number: 99, Value: 1}})
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Applied != 0 || !strings.Contains(err.Error(), "before[1]") {
		t.Errorf("a tell of trial 99: %v, want ErrNotFound naming before[1], Applied 0", err)
	}
	if n, err := c.Replay(ctx, "fused", nil); err != nil || n != 19 {
		t.Errorf("after the refused call the study holds %d trials (%v), want 19", n, err)
	}

	// A SIGKILL: the study is lost; re-driven (fused) from its log, it asks
	// on as the plain study, which the kill did not touch.
	want := ask(plain)
	pid := p.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for p.Pid() == pid || p.Pid() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the plugin did not restart within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.WaitReady(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if _, err := c.TellAndAsk(ctx, "fused", 0, 1, Complete); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a fused call after the restart: %v, want ErrNotFound", err)
	}
	if err := c.Redrive(ctx, cfg("fused"), fused.log); err != nil {
		t.Fatal(err)
	}
	if got := ask(fused); !cmp.Equal(got, want) {
		t.Errorf("after the re-drive: %v, the uninterrupted study asked %v", got, want)
	}
}

// makeOne makes a change as its own call.
func makeOne(ctx context.Context, c *Client, study string, op Op) error {
	if op.Kind == OpTell {
		return c.Tell(ctx, study, op.Number, op.Value, op.State)
	}
	_, err := c.Replay(ctx, study, op.Trials)
	return err
}

// BenchmarkTellThenAsk measures what a trial costs MIPROv2 in round trips
// to the real plugin: after an idle pause standing for an evaluation (the
// plugin's threads asleep), the trial is told and the next one asked — as
// two calls (Tell, Ask) or as one (TellAndAsk). It reports each one's
// median wall time; both run alternately on one study each, so that the
// machine's load weighs on both alike.
//
//	go test ./plugins/sampler -run '^$' -bench BenchmarkTellThenAsk -benchtime 40x
func BenchmarkTellThenAsk(b *testing.B) {
	host := samplertest.Host(b)
	c, _, err := Open(host, "")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cfg := StudyConfig{ID: "x", Seed: 9, Space: []Param{Indices("0_predictor_instruction", 6), Indices("0_predictor_demos", 6)},
		// Random asks only: the sampler's own work is the same every trial.
		Options: map[string]string{"n_startup_trials": "1000000"}}
	last := map[string]Trial{}
	for _, id := range []string{"plain", "fused"} {
		cfg.ID = id
		if _, err := c.CreateStudy(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		if last[id], err = c.Ask(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	var plain, fused []float64
	for b.Loop() {
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		if err := c.Tell(ctx, "plain", last["plain"].Number, 0.5, Complete); err != nil {
			b.Fatal(err)
		}
		if last["plain"], err = c.Ask(ctx, "plain"); err != nil {
			b.Fatal(err)
		}
		plain = append(plain, float64(time.Since(start))/float64(time.Millisecond))

		time.Sleep(50 * time.Millisecond)
		start = time.Now()
		if last["fused"], err = c.TellAndAsk(ctx, "fused", last["fused"].Number, 0.5, Complete); err != nil {
			b.Fatal(err)
		}
		fused = append(fused, float64(time.Since(start))/float64(time.Millisecond))
	}
	median := func(xs []float64) float64 {
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	b.ReportMetric(median(plain), "tell+ask-ms")
	b.ReportMetric(median(fused), "tellandask-ms")
}
