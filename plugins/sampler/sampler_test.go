package sampler

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
