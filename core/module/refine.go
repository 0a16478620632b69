package module

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// HintField is the input Refine adds to its predictors' signatures on a
// retry, holding the feedback LM's advice for that predictor.
const HintField = "hint_"

// hintDesc is DSPy's description of the hint field.
const hintDesc = "A hint to the module from an earlier run"

// WithProgramCode sets the text Refine shows the feedback LM as the
// program's code (DSPy sends the Python source of the module's class). The
// default names the program's Go type. BestOfN ignores it.
func WithProgramCode(code string) RolloutOption {
	return func(o *rolloutOptions) { o.programCode = code }
}

// WithRewardCode sets the text Refine shows the feedback LM as the reward
// function's code (DSPy sends its Python source). The default names the Go
// function. BestOfN ignores it.
func WithRewardCode(code string) RolloutOption {
	return func(o *rolloutOptions) { o.rewardCode = code }
}

// OfferFeedbackSignature is DSPy's OfferFeedback signature (dspy.Refine's
// feedback step), word for word: from the program's code, modules,
// inputs, trajectory, outputs, reward code, threshold and reward, it asks
// for a discussion and advice per module.
func OfferFeedbackSignature() *signature.Signature {
	str := func(name, desc string) signature.Field {
		return signature.Field{Name: name, Type: signature.StringType(), Desc: desc}
	}
	typed := func(name string, t *signature.Type, desc string) signature.Field {
		return signature.Field{Name: name, Type: t, TypeDeclared: true, Desc: desc}
	}
	sig, err := signature.New(
		[]signature.Field{
			str("program_code", "The code of the program that we are analyzing"),
			str("modules_defn", "The definition of each module in the program, including its I/O"),
			str("program_inputs", "The inputs to the program that we are analyzing"),
			str("program_trajectory", "The trajectory of the program's execution, showing each module's I/O"),
			str("program_outputs", "The outputs of the program that we are analyzing"),
			str("reward_code", "The code of the reward function that we are analyzing"),
			typed("target_threshold", signature.FloatType(), "The target threshold for the reward function"),
			typed("reward_value", signature.FloatType(), "The reward value assigned to the program's outputs"),
			typed("module_names", signature.ListOf(signature.StringType()), "The names of the modules in the program, for which we seek advice"),
		},
		[]signature.Field{
			str("discussion", "Discussing blame of where each module went wrong, if it did"),
			// DSPy's text lacks the space in "kind ofscenario"; kept, so
			// that prompts match.
			typed("advice", signature.DictOf(signature.StringType()), "For each module, describe very concretely, in this order: the specific scenarios in which it has made "+
				"mistakes in the past and what each mistake was, followed by what it should do differently in that kind of"+
				"scenario in the future. If the module is not to blame, write N/A."),
		},
		`
    In the discussion, assign blame to each module that contributed to the final reward being below the threshold, if
    any. Then, prescribe concrete advice of how the module should act on its future input when we retry the process, if
    it were to receive the same or similar inputs. If a module is not to blame, the advice should be N/A.
    The module will not see its own history, so it needs to rely on entirely concrete and actionable advice from you
    to avoid the same mistake on the same or similar inputs.
    `)
	if err != nil {
		// Unreachable: the fields are constants with distinct identifier
		// names. Returning the error would burden every caller with it.
		panic(fmt.Sprintf("module: OfferFeedback signature: %v", err))
	}
	return sig.WithName("OfferFeedback")
}

// Refine is BestOfN that learns from its misses: after an attempt whose
// reward is below Threshold (and before the last attempt), it asks an LM,
// with DSPy's OfferFeedback signature, to assign blame and give advice to
// each of the program's predictors, and the next attempt shows each
// predictor its advice in an extra input field "hint_" ("A hint to the
// module from an earlier run"; "N/A" for a predictor the LM gave none).
// It is DSPy's dspy.Refine, with its defaults: attempts, rollout ids,
// temperature 1.0, thresholds and fail count work as in BestOfN.
//
// The original program is never changed: each attempt runs a clone. The
// hint reaches a predictor as in DSPy, through the adapter: on a retry the
// attempt's context carries an adapter that formats each of the clone's
// predictors with "hint_" appended to its signature and its advice as the
// value, whatever inputs the program passes its predictors. That adapter
// also records each predictor call's inputs and outputs, which become the
// trajectory shown to the feedback LM. Two consequences of wrapping the
// adapter: on a retry, a ChatAdapter's fallback to JSON after a parse
// failure does not happen (the attempt fails instead, and counts as
// failed); and to keep that fallback where no hint is needed, an attempt
// without advice (the first) runs with the context's adapter unwrapped when
// it is a ChatAdapter with fallback — its trajectory is then the program's
// own inputs and outputs when it has one predictor, and empty otherwise.
// The recorded inputs leave out "hint_" (DSPy leaves it in, with a TODO to
// remove it).
//
// The feedback call uses the context's LM (DSPy's settings.lm; the first of
// the program's own LMs when the context has none), without the attempts'
// rollout id and temperature; its failure fails the attempt, as in DSPy.
// The prediction returned has Usage and Cost summing the attempts and the
// feedback calls. Safe for concurrent use as long as its fields are not
// changed while Forward runs.
type Refine struct {
	// Module is the program refined; its predictors are named
	// "module.<name>", as DSPy names them.
	Module Program
	// N is the most attempts made.
	N int
	// Reward scores each attempt.
	Reward RewardFunc
	// Threshold ends the run at the first attempt whose reward is at least
	// this.
	Threshold float64
	// FailCount is DSPy's fail_count (zero means N); see BestOfN.FailCount.
	FailCount int
	// ProgramCode is shown to the feedback LM as the program's code.
	ProgramCode string
	// RewardCode is shown to the feedback LM as the reward function's code.
	RewardCode string

	feedback *signature.Signature
}

var _ Program = (*Refine)(nil)

// NewRefine wraps m: up to n attempts, stopping at the first whose reward
// reaches threshold, with advice between attempts. Options:
// WithFailCount, WithProgramCode, WithRewardCode.
func NewRefine(m Program, n int, reward RewardFunc, threshold float64, opts ...RolloutOption) *Refine {
	var o rolloutOptions
	for _, opt := range opts {
		opt(&o)
	}
	r := &Refine{Module: m, N: n, Reward: reward, Threshold: threshold, FailCount: o.failCount,
		ProgramCode: o.programCode, RewardCode: o.rewardCode, feedback: OfferFeedbackSignature()}
	if r.ProgramCode == "" {
		r.ProgramCode = fmt.Sprintf("# Go program of type %T; its source is not available (see modules_defn for its modules).", m)
	}
	if r.RewardCode == "" && reward != nil {
		r.RewardCode = fmt.Sprintf("# Go reward function %s; its source is not available.", funcName(reward))
	}
	return r
}

func funcName(f any) string {
	if fn := runtime.FuncForPC(reflect.ValueOf(f).Pointer()); fn != nil {
		return fn.Name()
	}
	return fmt.Sprintf("%T", f)
}

// Forward runs the attempts, with feedback between them, and returns the
// chosen prediction.
func (r *Refine) Forward(ctx context.Context, inputs Inputs) (*example.Prediction, error) {
	return Traced(ctx, "Refine", nil, inputs, func(ctx context.Context) (*example.Prediction, error) {
		base := SettingsFrom(ctx).Adapter
		if base == nil {
			base = &adapter.ChatAdapter{}
		}
		var (
			advice     map[string]string // the latest feedback, nil before any
			trajectory []any             // the latest attempt's predictor calls
		)
		attempt := func(actx context.Context, _ int) (*example.Prediction, error) {
			clone := r.Module.Clone()
			// The wrapper records every attempt's predictor calls (DSPy's
			// trace) and keeps the base adapter's fallback.
			rec := newRefineAdapter(base, clone, advice)
			pred, err := clone.Forward(WithAdapter(actx, rec), inputs)
			if err != nil || pred == nil {
				return pred, err
			}
			trajectory = rec.trajectory()
			return pred, nil
		}
		miss := func(ctx context.Context, _ int, pred *example.Prediction, reward float64) (lm.Usage, lm.Cost, error) {
			fb, err := r.offerFeedback(ctx, inputs, trajectory, pred, reward)
			if fb == nil {
				return lm.Usage{}, lm.Cost{}, err
			}
			if err == nil {
				advice, err = adviceMap(fb)
			}
			return fb.Usage, fb.Cost, err
		}
		loop := rolloutLoop{name: "Refine", module: r.Module, n: r.N, reward: r.Reward, threshold: r.Threshold, failCount: r.FailCount}
		return loop.run(ctx, inputs, attempt, miss)
	})
}

// offerFeedback asks the feedback LM for advice on an attempt.
func (r *Refine) offerFeedback(ctx context.Context, inputs Inputs, trajectory []any, pred *example.Prediction, reward float64) (*example.Prediction, error) {
	sig := r.feedback
	if sig == nil {
		sig = OfferFeedbackSignature()
	}
	nps := r.Module.NamedPredictors()
	names := make([]any, len(nps))
	for i, np := range nps {
		names[i] = np.Name
	}
	// As DSPy, every value is a string: JSON (indented by 2) unless it
	// already is one.
	in := Inputs{
		"program_code":       r.ProgramCode,
		"modules_defn":       inspectModules(nps),
		"program_inputs":     pyjson.Dumps(inputs, 2),
		"program_trajectory": pyjson.Dumps(trajectory, 2),
		"program_outputs":    pyjson.Dumps(pred.Object(), 2),
		"reward_code":        r.RewardCode,
		"target_threshold":   pyjson.Dumps(r.Threshold, 2),
		"reward_value":       pyjson.Dumps(reward, 2),
		"module_names":       pyjson.Dumps(names, 2),
	}
	var opts []PredictOption
	if SettingsFrom(ctx).LM == nil {
		for _, np := range nps {
			if m := np.Predictor.LM(); m != nil {
				opts = append(opts, WithOwnLM(m))
				break
			}
		}
	}
	fb, err := NewPredict(sig, opts...).Forward(ctx, in)
	if err != nil {
		return fb, fmt.Errorf("refine feedback: %w", err)
	}
	return fb, nil
}

// adviceMap reads the feedback's advice field.
func adviceMap(fb *example.Prediction) (map[string]string, error) {
	v, ok := fb.Get("advice")
	if !ok {
		return nil, fmt.Errorf("refine feedback: no advice in the answer")
	}
	var m map[string]any
	switch x := v.(type) {
	case map[string]any:
		m = x
	case pyjson.Object:
		m = x.Map()
	default:
		return nil, fmt.Errorf("refine feedback: advice is %T, not a dict", v)
	}
	out := make(map[string]string, len(m))
	for k, a := range m {
		out[k] = pyjson.Str(a)
	}
	return out, nil
}

// trajectoryStep is one entry of DSPy's trajectory; outputs is the
// prediction's fields in its order (DSPy's dict(outputs)).
func trajectoryStep(name string, inputs map[string]any, outputs pyjson.Object) pyjson.Object {
	return pyjson.Object{{Key: "module_name", Value: name}, {Key: "inputs", Value: inputs}, {Key: "outputs", Value: outputs}}
}

// refineAdapter wraps an attempt's adapter: it adds the hint field and
// value to the signatures of the clone's predictors (when there is advice)
// and records every call of those predictors. Safe for concurrent use, as
// the program may call its predictors concurrently.
type refineAdapter struct {
	base   adapter.Adapter
	names  map[*signature.Signature]string // the clone's predictors' signatures
	advice map[string]string               // nil: no hint

	mu     sync.Mutex
	hinted map[*signature.Signature]*signature.Signature
	calls  []refineCall
}

type refineCall struct {
	sig     *signature.Signature
	name    string
	inputs  map[string]any
	outputs map[string]any
}

var _ adapter.Adapter = (*refineAdapter)(nil)

// newRefineAdapter gives each of clone's predictors a signature of its own
// (equal to the one it had), so that calls can be told apart by signature
// even where predictors shared one. Only the clone changes.
func newRefineAdapter(base adapter.Adapter, clone Program, advice map[string]string) *refineAdapter {
	a := &refineAdapter{base: base, names: map[*signature.Signature]string{}, hinted: map[*signature.Signature]*signature.Signature{}}
	if len(advice) > 0 {
		a.advice = advice
	}
	for _, np := range clone.NamedPredictors() {
		sig := np.Predictor.Signature().WithName(np.Predictor.Signature().Name())
		np.Predictor.SetSignature(sig)
		a.names[sig] = np.Name
	}
	return a
}

func (a *refineAdapter) Name() string { return a.base.Name() }

func (a *refineAdapter) Format(sig *signature.Signature, demos []example.Example, inputs map[string]any) ([]lm.Message, error) {
	return a.format(a.base, sig, demos, inputs)
}

// format is Format with base as the adapter that formats.
func (a *refineAdapter) format(base adapter.Adapter, sig *signature.Signature, demos []example.Example, inputs map[string]any) ([]lm.Message, error) {
	a.mu.Lock()
	name, known := a.names[sig]
	if known {
		rec := maps.Clone(inputs)
		delete(rec, HintField)
		a.calls = append(a.calls, refineCall{sig: sig, name: name, inputs: rec})
	}
	hsig := sig
	if a.advice != nil {
		if h, ok := a.hinted[sig]; ok {
			hsig = h
		} else if h, err := sig.AppendInput(signature.Field{Name: HintField, Type: signature.StringType(), Desc: hintDesc}); err == nil {
			a.hinted[sig] = h
			hsig = h
		} // else the signature already has a hint field (a nested Refine): leave it
	}
	a.mu.Unlock()
	if hsig == sig {
		return base.Format(sig, demos, inputs)
	}
	hint, ok := a.advice[name]
	if !known || !ok {
		hint = "N/A"
	}
	in := maps.Clone(inputs)
	in[HintField] = hint
	return base.Format(hsig, demos, in)
}

// Parse parses with the base adapter and records the outputs on the
// oldest call of that predictor still without them. (When one predictor
// is called concurrently and asked for several completions, a later
// completion may be recorded on another of its calls.)
func (a *refineAdapter) Parse(sig *signature.Signature, completion string) (map[string]any, error) {
	return a.parse(a.base, sig, completion)
}

// parse is Parse with base as the adapter that parses.
func (a *refineAdapter) parse(base adapter.Adapter, sig *signature.Signature, completion string) (map[string]any, error) {
	out, err := base.Parse(sig, completion)
	if err != nil {
		return out, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.calls {
		if c := &a.calls[i]; c.sig == sig && c.outputs == nil {
			c.outputs = maps.Clone(out)
			break
		}
	}
	return out, nil
}

func (a *refineAdapter) Prepare(sig *signature.Signature, req *lm.Request, model lm.LM) {
	a.base.Prepare(sig, req, model)
}

// Fallback keeps the base adapter's fallback (DSPy's Refine wraps a
// ChatAdapter in a subclass, which keeps it too): the fallback formats
// with the same hint and records into the same trajectory.
func (a *refineAdapter) Fallback() adapter.Adapter {
	fb := a.base.Fallback()
	if fb == nil {
		return nil
	}
	return refineFallback{a: a, base: fb}
}

// refineFallback is a refineAdapter's fallback: its base's fallback with
// the refineAdapter's hint and recording.
type refineFallback struct {
	a    *refineAdapter
	base adapter.Adapter
}

func (f refineFallback) Name() string { return f.base.Name() }

func (f refineFallback) Format(sig *signature.Signature, demos []example.Example, inputs map[string]any) ([]lm.Message, error) {
	return f.a.format(f.base, sig, demos, inputs)
}

func (f refineFallback) Parse(sig *signature.Signature, completion string) (map[string]any, error) {
	return f.a.parse(f.base, sig, completion)
}

func (f refineFallback) Prepare(sig *signature.Signature, req *lm.Request, model lm.LM) {
	f.base.Prepare(sig, req, model)
}

// Fallback returns nil: a call falls back once at most.
func (refineFallback) Fallback() adapter.Adapter { return nil }

// trajectory lists the recorded calls that produced outputs, in call order.
func (a *refineAdapter) trajectory() []any {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []any{}
	for _, c := range a.calls {
		if c.outputs != nil {
			out = append(out, trajectoryStep(c.name, c.inputs, outputsInOrder(c.sig, c.outputs).Object()))
		}
	}
	return out
}

// inspectModules is DSPy's inspect_modules: each predictor's name, input
// and output fields (as the adapters describe them) and instructions,
// between lines of 80 dashes.
func inspectModules(nps []NamedPredictor) string {
	sep := strings.Repeat("-", 80)
	parts := []string{sep}
	indent := func(s string) string { return strings.Join(append([]string{""}, pySplitLines(s)...), "\n\t\t") }
	for _, np := range nps {
		sig := np.Predictor.Signature()
		parts = append(parts,
			"Module "+np.Name,
			"\n\tInput Fields:",
			indent(fieldDescriptions(sig.Inputs())),
			"\tOutput Fields:",
			indent(fieldDescriptions(sig.Outputs())),
			"\tOriginal Instructions: "+indent(sig.Instructions()),
			sep)
	}
	for i, p := range parts {
		parts[i] = strings.Trim(p, "\n")
	}
	return strings.Join(parts, "\n")
}

// fieldDescriptions is DSPy's get_field_description_string.
func fieldDescriptions(fields []signature.Field) string {
	lines := make([]string, len(fields))
	for i, f := range fields {
		desc := f.Desc
		if desc == "${"+f.Name+"}" {
			desc = ""
		}
		lines[i] = strconv.Itoa(i+1) + ". `" + f.Name + "` (" + f.Type.PythonName() + "): " + desc
	}
	return strings.TrimFunc(strings.Join(lines, "\n"), isPySpace)
}

// pySplitLines is Python's str.splitlines for the usual line ends.
func pySplitLines(s string) []string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// NamedPredictors lists the refined program's predictors under "module".
func (r *Refine) NamedPredictors() []NamedPredictor {
	return Children(Child{Name: "module", Program: r.Module})
}

// Clone copies the refined program; the reward function is shared.
func (r *Refine) Clone() Program {
	c := *r
	if r.Module != nil {
		c.Module = r.Module.Clone()
	}
	return &c
}
