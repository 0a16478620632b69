// Package sampler is the typed Go API of the "sampler" capability: Optuna
// studies held by the Python plugin dspex_plugins.sampler, asked and told
// over the bridge. MIPROv2 drives it: Go evaluates every candidate and
// keeps the trial log; the plugin proposes the next parameters.
//
// The plugin holds only what Go can rebuild. When the plugin restarts, its
// studies are gone (calls on them fail with ErrNotFound); Rebuild creates
// the study again with the same configuration and replays the logged
// trials, and with the default RNG rule ("trial": each Ask draws from a
// sampler seeded from the study's seed and the trial's number) the next
// Ask proposes what an uninterrupted study would have. The other rule,
// RNGContinuous, draws from one sampler seeded once and asks exactly what
// DSPy's MIPROv2 asks; such a study is restored with Redrive, which makes
// the logged Ask, Tell and Replay calls again in their order. See
// python/dspex_plugins/sampler.py for both rules.
//
// A tell is usually followed by the next ask. AskAfter (and TellAndAsk)
// carries the tells and replays made before an ask in the ask's round
// trip, ReplayAfter in a replay's: the plugin makes them exactly as the
// calls of their own would, in order, all checked before any is made. A
// study whose plugin did not say that it takes such fused calls (its
// CreateStudy answer) gets each change as a call of its own.
package sampler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dspex/dspex/bridge"
	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
)

// Capability is the capability the plugin serves.
const Capability = "sampler"

// PluginName is the name of the built-in sampler plugin.
const PluginName = bridge.SamplerPlugin

// Spec returns how to start the Python sampler plugin:
// `<python> -m dspex_plugins.sampler`, serving Capability: the built-in
// registry's sampler plugin (bridge.DefaultConfig). It needs the `sampler`
// extra (Optuna) installed beside dspex_plugins.
func Spec() bridge.PluginSpec {
	return bridge.DefaultConfig().Plugins[bridge.SamplerPlugin]
}

// Errors the plugin answers with, for errors.Is. Each call's error is an
// *Error that also keeps the gRPC status (status.Code works on it) and
// wraps the bridge's errors (bridge.ErrPluginDown, bridge.ErrPluginExited).
var (
	// ErrNotFound: no such study (never created, or lost in a plugin
	// restart: Rebuild it), or no such trial.
	ErrNotFound = errors.New("sampler: not found")
	// ErrInvalid: a bad search space, option, state or value.
	ErrInvalid = errors.New("sampler: invalid request")
	// ErrPrecondition: Optuna is not installed in the plugin's Python (the
	// message says what to install), or a trial is told twice.
	ErrPrecondition = errors.New("sampler: failed precondition")
)

// Error is a failed sampler call.
type Error struct {
	Op    string // "create study", "ask", "tell", "best", "replay"
	Study string
	Err   error
	// Applied is how many of the changes an AskAfter or ReplayAfter
	// carried were made before it failed: 0 when they rode on the call
	// (the plugin checks them all before making any; a plugin that died
	// mid-call lost the study anyway), those made when each was its own
	// call (a plugin without fused calls).
	Applied int
}

func (e *Error) Error() string {
	return fmt.Sprintf("sampler: %s study %q: %v", e.Op, e.Study, e.Err)
}

// Unwrap returns the call's error (a gRPC status error, or the bridge's).
func (e *Error) Unwrap() error { return e.Err }

// Is maps the call's gRPC status to ErrNotFound, ErrInvalid and
// ErrPrecondition.
func (e *Error) Is(target error) bool {
	switch status.Code(e.Err) {
	case codes.NotFound:
		return target == ErrNotFound
	case codes.InvalidArgument:
		return target == ErrInvalid
	case codes.FailedPrecondition:
		return target == ErrPrecondition
	}
	return false
}

// ValueKind says which field of a Value is set.
type ValueKind int

const (
	// Choice is a categorical parameter's value.
	Choice ValueKind = iota
	// Int is an integer parameter's value.
	Int
	// Float is a float parameter's value.
	Float
)

// Value is one parameter's value.
type Value struct {
	Kind   ValueKind
	Choice string
	Int    int64
	Float  float64
}

// ChoiceValue is a categorical parameter's value.
func ChoiceValue(s string) Value { return Value{Kind: Choice, Choice: s} }

// IntValue is an integer parameter's value.
func IntValue(n int64) Value { return Value{Kind: Int, Int: n} }

// FloatValue is a float parameter's value.
func FloatValue(f float64) Value { return Value{Kind: Float, Float: f} }

// String writes the value: a choice as itself, numbers in Go's shortest form.
func (v Value) String() string {
	switch v.Kind {
	case Int:
		return strconv.FormatInt(v.Int, 10)
	case Float:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	}
	return v.Choice
}

// Params are a trial's parameter values by name.
type Params map[string]Value

// Index reads a categorical parameter whose choices are indices (Indices):
// MIPROv2's instruction and demo-set numbers.
func (p Params) Index(name string) (int, error) {
	v, ok := p[name]
	if !ok || v.Kind != Choice {
		return 0, fmt.Errorf("sampler: no categorical parameter %q", name)
	}
	i, err := strconv.Atoi(v.Choice)
	if err != nil {
		return 0, fmt.Errorf("sampler: parameter %q: choice %q is not an index", name, v.Choice)
	}
	return i, nil
}

// Param is one dimension of a search space: exactly one of Choices, Int or
// Float is set.
type Param struct {
	Name    string
	Choices []string
	Int     *IntRange
	Float   *FloatRange
}

// IntRange is an integer parameter in [Low, High]; Step 0 means 1.
type IntRange struct {
	Low, High, Step int64
	Log             bool
}

// FloatRange is a float parameter in [Low, High]; Step 0 means continuous.
type FloatRange struct {
	Low, High, Step float64
	Log             bool
}

// Categorical is a parameter that takes one of choices.
func Categorical(name string, choices ...string) Param {
	return Param{Name: name, Choices: choices}
}

// Indices is a categorical parameter over "0" … "n-1", as DSPy's MIPROv2
// declares its parameters (suggest_categorical(name, range(n))): Optuna
// samples categoricals by index, so the plugin picks the indices DSPy
// would.
func Indices(name string, n int) Param {
	choices := make([]string, n)
	for i := range choices {
		choices[i] = strconv.Itoa(i)
	}
	return Param{Name: name, Choices: choices}
}

// State is a trial's state.
type State string

const (
	Complete State = "complete" // finished with a value
	Pruned   State = "pruned"   // stopped early; its value is ignored
	Fail     State = "fail"     // failed; its value is ignored
	// Running is for Replay only: a trial asked before a restart and still
	// being evaluated, told (under the same number) when it ends.
	Running State = "running"
)

// StudyConfig describes a study. Its zero value, with a Space, is
// MIPROv2's study: TPE (multivariate), maximize, seed 0.
type StudyConfig struct {
	// ID names the study; "" lets the plugin pick one. Creating an ID that
	// exists replaces that study.
	ID string
	// Space is the search space. Ask suggests the parameters in this order,
	// which matters for reproducing DSPy: MIPROv2's is, per predictor i,
	// "<i>_predictor_instruction" then "<i>_predictor_demos".
	Space []Param
	// Minimize turns the default direction (maximize) around.
	Minimize bool
	// Seed seeds the sampler; 0 <= Seed < 2^32.
	Seed int64
	// Sampler is "tpe", "random", "nsgaii" or "bruteforce". Default: the
	// plugin's DSPEX_SAMPLER, else "tpe".
	Sampler string
	// RNG is RNGTrial (the default: Rebuild restores the study exactly)
	// or RNGContinuous (DSPy's own sequence; Redrive restores it).
	RNG string
	// Options are the sampler's other options, e.g. "constant_liar":
	// "true", "n_startup_trials": "10".
	Options map[string]string
}

// Trial is an asked trial: its number and its parameters.
type Trial struct {
	Number int64
	Params Params
}

// PastTrial is a trial from Go's log, for Replay.
type PastTrial struct {
	Params Params
	Value  float64
	State  State // "" means Complete
}

// BestTrial is the best complete trial.
type BestTrial struct {
	Number int64
	Params Params
	Value  float64
}

// Client calls the Sampler service. Safe for concurrent use.
type Client struct {
	rpc pluginv1.SamplerClient
	// fused holds, per study id, whether its CreateStudy answered
	// fused_calls: the plugin makes the changes an Ask or Replay carries.
	fused sync.Map
}

// New returns a client over a plugin's connection (bridge.Plugin.Conn,
// which stays valid across restarts).
func New(conn grpc.ClientConnInterface) *Client {
	return &Client{rpc: pluginv1.NewSamplerClient(conn)}
}

// Open returns a client of the plugin that serves Capability on host
// (plugin, if not "", names it), and that plugin.
func Open(host *bridge.Host, plugin string) (*Client, *bridge.Plugin, error) {
	p, err := host.ForCapability(Capability, plugin)
	if err != nil {
		return nil, nil, fmt.Errorf("sampler: open: %w", err)
	}
	return New(p.Conn()), p, nil
}

// CreateStudy creates (or replaces) a study and returns its id.
func (c *Client) CreateStudy(ctx context.Context, cfg StudyConfig) (string, error) {
	req, err := createRequest(cfg)
	if err != nil {
		return "", &Error{Op: "create study", Study: cfg.ID, Err: err}
	}
	resp, err := c.rpc.CreateStudy(ctx, req)
	if err != nil {
		return "", &Error{Op: "create study", Study: cfg.ID, Err: err}
	}
	c.fused.Store(resp.GetStudyId(), resp.GetFusedCalls())
	return resp.GetStudyId(), nil
}

// Fused reports whether the plugin makes the changes that AskAfter and
// ReplayAfter carry in the same round trip (its CreateStudy of study said
// so); when not, they make each change as a call of its own.
func (c *Client) Fused(study string) bool {
	v, ok := c.fused.Load(study)
	return ok && v.(bool)
}

// AskAfter makes the changes in before — each an OpTell or an OpReplay,
// in order, exactly as Tell and Replay would — and then asks, all in one
// round trip when the plugin takes fused calls (Fused), else one call
// each. The plugin checks every change before making any: a refused one
// fails the call with nothing changed and nothing asked. A failed call's
// *Error says in Applied how many changes were made.
func (c *Client) AskAfter(ctx context.Context, study string, before []Op) (Trial, error) {
	changes, err := changesProto(before)
	if err != nil {
		return Trial{}, &Error{Op: "ask", Study: study, Err: err}
	}
	if len(before) > 0 && !c.Fused(study) {
		if n, err := c.makeEach(ctx, study, before); err != nil {
			err.(*Error).Applied = n
			return Trial{}, err
		}
		t, err := c.Ask(ctx, study)
		if err != nil {
			err.(*Error).Applied = len(before)
		}
		return t, err
	}
	resp, err := c.rpc.Ask(ctx, &pluginv1.AskRequest{StudyId: study, Before: changes})
	if err != nil {
		return Trial{}, &Error{Op: "ask", Study: study, Err: err}
	}
	if int(resp.GetApplied()) != len(before) {
		return Trial{}, &Error{Op: "ask", Study: study, Err: unfused(resp.GetApplied(), len(before)), Applied: int(resp.GetApplied())}
	}
	return Trial{Number: resp.GetTrialNumber(), Params: fromProto(resp.GetParams())}, nil
}

// TellAndAsk tells a trial's result and asks the next trial: AskAfter
// with one OpTell.
func (c *Client) TellAndAsk(ctx context.Context, study string, number int64, value float64, state State) (Trial, error) {
	return c.AskAfter(ctx, study, []Op{{Kind: OpTell, Number: number, Value: value, State: state}})
}

// ReplayAfter is Replay after the changes in before, as AskAfter makes
// them (in the same round trip when the plugin takes fused calls). With
// no trials it only makes the changes, and answers the number of trials
// the study holds.
func (c *Client) ReplayAfter(ctx context.Context, study string, before []Op, trials []PastTrial) (int64, error) {
	changes, err := changesProto(before)
	if err != nil {
		return 0, &Error{Op: "replay", Study: study, Err: err}
	}
	if len(before) > 0 && !c.Fused(study) {
		if n, err := c.makeEach(ctx, study, before); err != nil {
			err.(*Error).Applied = n
			return 0, err
		}
		n, err := c.Replay(ctx, study, trials)
		if err != nil {
			err.(*Error).Applied = len(before)
		}
		return n, err
	}
	resp, err := c.rpc.Replay(ctx, &pluginv1.ReplayRequest{StudyId: study, Trials: pastProto(trials), Before: changes})
	if err != nil {
		return 0, &Error{Op: "replay", Study: study, Err: err}
	}
	if int(resp.GetApplied()) != len(before) {
		return 0, &Error{Op: "replay", Study: study, Err: unfused(resp.GetApplied(), len(before)), Applied: int(resp.GetApplied())}
	}
	return resp.GetTrials(), nil
}

// ErrUnfused: a plugin answered a fused call without making the changes
// it carried (one that predates them, though its study said otherwise).
var ErrUnfused = errors.New("sampler: the plugin did not make the changes the call carried")

func unfused(applied int32, want int) error {
	return fmt.Errorf("%w: it made %d of %d", ErrUnfused, applied, want)
}

// makeEach makes the changes one call each and returns how many were made.
func (c *Client) makeEach(ctx context.Context, study string, changes []Op) (int, error) {
	for i, op := range changes {
		var err error
		if op.Kind == OpTell {
			err = c.Tell(ctx, study, op.Number, op.Value, op.State)
		} else {
			_, err = c.Replay(ctx, study, op.Trials)
		}
		if err != nil {
			return i, err
		}
	}
	return len(changes), nil
}

// changesProto converts the changes a call carries; each must be an
// OpTell or an OpReplay.
func changesProto(ops []Op) ([]*pluginv1.StudyChange, error) {
	out := make([]*pluginv1.StudyChange, len(ops))
	for i, op := range ops {
		switch op.Kind {
		case OpTell:
			out[i] = &pluginv1.StudyChange{Change: &pluginv1.StudyChange_Tell{Tell: &pluginv1.TellRequest{
				TrialNumber: op.Number, Value: op.Value, State: string(op.State)}}}
		case OpReplay:
			out[i] = &pluginv1.StudyChange{Change: &pluginv1.StudyChange_Replay{Replay: &pluginv1.ReplayRequest{Trials: pastProto(op.Trials)}}}
		default:
			return nil, fmt.Errorf("%w: change %d has kind %q, want %q or %q", ErrInvalid, i, op.Kind, OpTell, OpReplay)
		}
	}
	return out, nil
}

func pastProto(trials []PastTrial) []*pluginv1.PastTrial {
	out := make([]*pluginv1.PastTrial, len(trials))
	for i, t := range trials {
		out[i] = &pluginv1.PastTrial{Params: toProto(t.Params), Value: t.Value, State: string(t.State)}
	}
	return out
}

// Ask starts a trial and returns its number and parameters. Several trials
// may be asked before any is told.
func (c *Client) Ask(ctx context.Context, study string) (Trial, error) {
	resp, err := c.rpc.Ask(ctx, &pluginv1.AskRequest{StudyId: study})
	if err != nil {
		return Trial{}, &Error{Op: "ask", Study: study, Err: err}
	}
	return Trial{Number: resp.GetTrialNumber(), Params: fromProto(resp.GetParams())}, nil
}

// Tell reports a trial's result: its value (state Complete, or "") or
// that it was pruned or failed.
func (c *Client) Tell(ctx context.Context, study string, number int64, value float64, state State) error {
	_, err := c.rpc.Tell(ctx, &pluginv1.TellRequest{StudyId: study, TrialNumber: number, Value: value, State: string(state)})
	if err != nil {
		return &Error{Op: fmt.Sprintf("tell trial %d of", number), Study: study, Err: err}
	}
	return nil
}

// Best returns the best complete trial, and false when there is none.
func (c *Client) Best(ctx context.Context, study string) (BestTrial, bool, error) {
	resp, err := c.rpc.Best(ctx, &pluginv1.BestRequest{StudyId: study})
	if err != nil {
		return BestTrial{}, false, &Error{Op: "best of", Study: study, Err: err}
	}
	if !resp.GetFound() {
		return BestTrial{}, false, nil
	}
	return BestTrial{Number: resp.GetTrialNumber(), Params: fromProto(resp.GetParams()), Value: resp.GetValue()}, true, nil
}

// Replay appends trials to a study, in order, without sampling: on a fresh
// study it rebuilds a history; on a live one it is Optuna's add_trial
// (MIPROv2's baseline and full-evaluation trials). All or none are added.
// It returns the number of trials the study then holds, which is the next
// trial's number.
func (c *Client) Replay(ctx context.Context, study string, trials []PastTrial) (int64, error) {
	resp, err := c.rpc.Replay(ctx, &pluginv1.ReplayRequest{StudyId: study, Trials: pastProto(trials)})
	if err != nil {
		return 0, &Error{Op: "replay", Study: study, Err: err}
	}
	return resp.GetTrials(), nil
}

// Rebuild creates the study cfg describes (cfg.ID must be set) and
// replays its history: every trial the study held, in trial-number order,
// those still being evaluated as Running. Use it after a plugin restart
// (calls on the study failed with ErrNotFound).
func (c *Client) Rebuild(ctx context.Context, cfg StudyConfig, history []PastTrial) error {
	if cfg.ID == "" {
		return &Error{Op: "rebuild", Err: errors.New("the study config has no ID")}
	}
	if _, err := c.CreateStudy(ctx, cfg); err != nil {
		return err
	}
	n, err := c.Replay(ctx, cfg.ID, history)
	if err != nil {
		return err
	}
	if n != int64(len(history)) {
		return &Error{Op: "rebuild", Study: cfg.ID, Err: fmt.Errorf("replayed %d trials, the study holds %d", len(history), n)}
	}
	return nil
}

// The RNG rules of StudyConfig.RNG.
const (
	// RNGTrial seeds each Ask from the study's seed and the trial's
	// number: Rebuild (Replay of the history) restores a study exactly.
	RNGTrial = "trial"
	// RNGContinuous draws from one sampler seeded once, as DSPy's MIPROv2
	// does: the same seed and scores ask DSPy's own trials. Only Redrive
	// restores such a study exactly.
	RNGContinuous = "continuous"
)

// Continuous reports whether cfg asks for RNGContinuous (in RNG, or in
// Options["rng"] when RNG is "").
func (cfg StudyConfig) Continuous() bool {
	rng := cfg.RNG
	if rng == "" {
		rng = cfg.Options["rng"]
	}
	return strings.EqualFold(strings.TrimSpace(rng), RNGContinuous)
}

// OpKind says what an Op did.
type OpKind string

const (
	OpAsk    OpKind = "ask"    // Ask answered Number with Params
	OpTell   OpKind = "tell"   // Tell of Number with Value and State
	OpReplay OpKind = "replay" // Replay of Trials
)

// Op is one call that changed a study, in a log for Redrive.
type Op struct {
	Kind   OpKind
	Number int64       // OpAsk, OpTell: the trial's number
	Params Params      // OpAsk: what was asked
	Value  float64     // OpTell
	State  State       // OpTell; "" means Complete
	Trials []PastTrial // OpReplay
}

// ErrDiverged: a re-driven Ask answered other parameters than the log
// holds (another seed, sampler, Optuna or history).
var ErrDiverged = errors.New("sampler: re-driven study diverged from its log")

// Redrive creates the study cfg describes (cfg.ID must be set) and makes
// the logged calls again, in order: each Ask is asked again and must
// answer the logged trial (else ErrDiverged), each Tell and Replay is made
// again. A sampler seeded once (RNGContinuous) then holds the state of the
// study the log was taken from, random generator included, and goes on
// asking what that study would have; Rebuild cannot promise that. Use it
// after a plugin restart, with the log of every successful Ask, Tell and
// Replay on the study.
func (c *Client) Redrive(ctx context.Context, cfg StudyConfig, ops []Op) error {
	return Redrive(ctx, c, cfg, ops)
}

// Driver is what Redrive calls; *Client implements it, and so may a
// wrapper of one.
type Driver interface {
	CreateStudy(ctx context.Context, cfg StudyConfig) (string, error)
	Ask(ctx context.Context, study string) (Trial, error)
	Tell(ctx context.Context, study string, number int64, value float64, state State) error
	Replay(ctx context.Context, study string, trials []PastTrial) (int64, error)
}

// FusedDriver is a Driver whose asks and replays carry changes
// (AskAfter, ReplayAfter); *Client is one. Redrive through one makes the
// logged tells and replays in the round trip of the ask that follows them.
type FusedDriver interface {
	Driver
	AskAfter(ctx context.Context, study string, before []Op) (Trial, error)
	ReplayAfter(ctx context.Context, study string, before []Op, trials []PastTrial) (int64, error)
}

var _ FusedDriver = (*Client)(nil)

// Redrive is Client.Redrive through any Driver. Through a FusedDriver the
// tells and replays ride on the next ask (those after the last ask on one
// ReplayAfter): the same calls, in the same order, in fewer round trips.
func Redrive(ctx context.Context, c Driver, cfg StudyConfig, ops []Op) error {
	if cfg.ID == "" {
		return &Error{Op: "redrive", Err: errors.New("the study config has no ID")}
	}
	if _, err := c.CreateStudy(ctx, cfg); err != nil {
		return err
	}
	fused, ok := c.(FusedDriver)
	if !ok {
		return redriveEach(ctx, c, cfg.ID, ops)
	}
	var waiting []Op
	for i, op := range ops {
		switch op.Kind {
		case OpAsk:
			t, err := fused.AskAfter(ctx, cfg.ID, waiting)
			if err != nil {
				return err
			}
			if err := sameAsk(cfg.ID, i, t, op); err != nil {
				return err
			}
			waiting = nil
		case OpTell, OpReplay:
			waiting = append(waiting, op)
		default:
			return &Error{Op: "redrive", Study: cfg.ID, Err: fmt.Errorf("%w: call %d has kind %q", ErrInvalid, i, op.Kind)}
		}
	}
	if len(waiting) == 0 {
		return nil
	}
	var trials []PastTrial
	if last := waiting[len(waiting)-1]; last.Kind == OpReplay {
		waiting, trials = waiting[:len(waiting)-1], last.Trials
	}
	_, err := fused.ReplayAfter(ctx, cfg.ID, waiting, trials)
	return err
}

func sameAsk(study string, i int, t Trial, op Op) error {
	if t.Number != op.Number || !maps.Equal(t.Params, op.Params) {
		return &Error{Op: "redrive", Study: study, Err: fmt.Errorf("%w: call %d asked trial %d with %v, the log holds trial %d with %v",
			ErrDiverged, i, t.Number, t.Params, op.Number, op.Params)}
	}
	return nil
}

// redriveEach makes the logged calls one by one.
func redriveEach(ctx context.Context, c Driver, study string, ops []Op) error {
	cfg := StudyConfig{ID: study}
	for i, op := range ops {
		switch op.Kind {
		case OpAsk:
			t, err := c.Ask(ctx, cfg.ID)
			if err != nil {
				return err
			}
			if err := sameAsk(cfg.ID, i, t, op); err != nil {
				return err
			}
		case OpTell:
			if err := c.Tell(ctx, cfg.ID, op.Number, op.Value, op.State); err != nil {
				return err
			}
		case OpReplay:
			if _, err := c.Replay(ctx, cfg.ID, op.Trials); err != nil {
				return err
			}
		default:
			return &Error{Op: "redrive", Study: cfg.ID, Err: fmt.Errorf("%w: call %d has kind %q", ErrInvalid, i, op.Kind)}
		}
	}
	return nil
}

func createRequest(cfg StudyConfig) (*pluginv1.CreateStudyRequest, error) {
	req := &pluginv1.CreateStudyRequest{StudyId: cfg.ID, Seed: cfg.Seed, Direction: "maximize", SamplerOptions: map[string]string{}}
	if cfg.Minimize {
		req.Direction = "minimize"
	}
	for k, v := range cfg.Options {
		req.SamplerOptions[k] = v
	}
	if cfg.Sampler != "" {
		req.SamplerOptions["sampler"] = cfg.Sampler
	}
	if cfg.RNG != "" {
		req.SamplerOptions["rng"] = cfg.RNG
	}
	for _, p := range cfg.Space {
		sp := &pluginv1.SearchParam{Name: p.Name}
		n := 0
		if p.Choices != nil {
			n++
			sp.Kind = &pluginv1.SearchParam_Categorical{Categorical: &pluginv1.Categorical{Choices: p.Choices}}
		}
		if p.Int != nil {
			n++
			sp.Kind = &pluginv1.SearchParam_IntRange{IntRange: &pluginv1.IntRange{Low: p.Int.Low, High: p.Int.High, Step: p.Int.Step, Log: p.Int.Log}}
		}
		if p.Float != nil {
			n++
			sp.Kind = &pluginv1.SearchParam_FloatRange{FloatRange: &pluginv1.FloatRange{Low: p.Float.Low, High: p.Float.High, Step: p.Float.Step, Log: p.Float.Log}}
		}
		if n != 1 {
			return nil, fmt.Errorf("%w: parameter %q sets %d of Choices, Int and Float, want 1", ErrInvalid, p.Name, n)
		}
		req.Space = append(req.Space, sp)
	}
	return req, nil
}

func toProto(p Params) map[string]*pluginv1.ParamValue {
	out := make(map[string]*pluginv1.ParamValue, len(p))
	for name, v := range p {
		switch v.Kind {
		case Int:
			out[name] = &pluginv1.ParamValue{Value: &pluginv1.ParamValue_IntValue{IntValue: v.Int}}
		case Float:
			out[name] = &pluginv1.ParamValue{Value: &pluginv1.ParamValue_FloatValue{FloatValue: v.Float}}
		default:
			out[name] = &pluginv1.ParamValue{Value: &pluginv1.ParamValue_Categorical{Categorical: v.Choice}}
		}
	}
	return out
}

func fromProto(m map[string]*pluginv1.ParamValue) Params {
	out := make(Params, len(m))
	for name, v := range m {
		switch x := v.GetValue().(type) {
		case *pluginv1.ParamValue_IntValue:
			out[name] = IntValue(x.IntValue)
		case *pluginv1.ParamValue_FloatValue:
			out[name] = FloatValue(x.FloatValue)
		case *pluginv1.ParamValue_Categorical:
			out[name] = ChoiceValue(x.Categorical)
		}
	}
	return out
}
