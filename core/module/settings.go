// Package module holds DSPEx's modules: Predict, the one place that calls an
// LM (adapter formats → LM → adapter parses), and the modules built on it
// (ChainOfThought, and a typed layer over Go structs).
//
// Settings — which LM, which adapter, call-level sampling parameters — travel
// in the context.Context, never in globals:
//
//	ctx = module.WithLM(ctx, model)
//	qa := module.NewChainOfThought(signature.MustParse("question -> answer"))
//	pred, err := qa.Forward(ctx, module.Inputs{"question": "..."})
//
// Modules that hold predictors expose them by stable dotted names
// (NamedPredictors), so optimizers can read and set each predictor's
// instructions and demos.
package module

import (
	"context"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/lm"
)

// Inputs are a module call's input fields by name. The fields print in the
// signature's order; a value's own objects print in their order when they
// are example.Object values (as read from JSON), and with sorted keys when
// they are Go maps, which have no order to keep. Integers beyond int64 may
// be given as *big.Int.
type Inputs = map[string]any

// Settings are the per-call settings carried in a context.
type Settings struct {
	// LM is the model predictors use when they have none of their own.
	LM lm.LM
	// Adapter formats prompts; nil means a ChatAdapter (with JSON fallback).
	Adapter adapter.Adapter
	// Params override every predictor's sampling parameters for this call.
	Params lm.Params
	// RolloutID makes otherwise identical calls distinct (cache entries,
	// sampled rollouts).
	RolloutID string
}

type settingsKey struct{}

// SettingsFrom returns the settings carried by ctx (zero Settings if none).
func SettingsFrom(ctx context.Context) Settings {
	s, _ := ctx.Value(settingsKey{}).(Settings)
	return s
}

// WithSettings returns a context carrying s, replacing earlier settings.
func WithSettings(ctx context.Context, s Settings) context.Context {
	return context.WithValue(ctx, settingsKey{}, s)
}

// WithLM returns a context whose calls use model.
func WithLM(ctx context.Context, model lm.LM) context.Context {
	s := SettingsFrom(ctx)
	s.LM = model
	return WithSettings(ctx, s)
}

// WithAdapter returns a context whose calls format prompts with a.
func WithAdapter(ctx context.Context, a adapter.Adapter) context.Context {
	s := SettingsFrom(ctx)
	s.Adapter = a
	return WithSettings(ctx, s)
}

// WithParams returns a context whose calls merge p over each predictor's
// own parameters.
func WithParams(ctx context.Context, p lm.Params) context.Context {
	s := SettingsFrom(ctx)
	s.Params = s.Params.Merge(p)
	return WithSettings(ctx, s)
}

// WithRolloutID returns a context whose calls carry the rollout id.
func WithRolloutID(ctx context.Context, id string) context.Context {
	s := SettingsFrom(ctx)
	s.RolloutID = id
	return WithSettings(ctx, s)
}
