package finetune

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"strings"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
)

// Model is an LM that sends every request to another model name through
// the same endpoint: a fine-tuned model served where its base model is
// (OpenAI's ft:… ids, a local server that loaded the trained directory).
// Its Model() is the new name, so a saved program records it (the state
// file's "lm": {"model": …}).
type Model struct {
	next  lm.LM
	model string
}

var (
	_ lm.LM                = (*Model)(nil)
	_ lm.Streamer          = (*Model)(nil)
	_ lm.ResponseFormatter = (*Model)(nil)
)

// WithModel returns next sending its requests to model.
func WithModel(next lm.LM, model string) *Model {
	if m, ok := next.(*Model); ok {
		next = m.next
	}
	return &Model{next: next, model: model}
}

// Model is the model requests go to.
func (m *Model) Model() string { return m.model }

// Base is the LM the requests go through.
func (m *Model) Base() lm.LM { return m.next }

// ResponseFormat passes the endpoint's answer through.
func (m *Model) ResponseFormat() lm.ResponseFormatMode { return lm.ResponseFormatFor(m.next) }

func (m *Model) request(req *lm.Request) *lm.Request {
	if req == nil {
		return nil
	}
	r := *req
	r.Model = m.model
	return &r
}

// Complete sends req to the model.
func (m *Model) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	return m.next.Complete(ctx, m.request(req))
}

// Stream streams req from the model when the endpoint streams.
func (m *Model) Stream(ctx context.Context, req *lm.Request) iter.Seq2[lm.Delta, error] {
	if s, ok := m.next.(lm.Streamer); ok {
		return s.Stream(ctx, m.request(req))
	}
	return func(yield func(lm.Delta, error) bool) {
		yield(lm.Delta{}, fmt.Errorf("%w: the endpoint of %s does not stream", lm.ErrBadRequest, m.model))
	}
}

// StateModels reads the model each predictor of a saved state file uses
// ("lm": {"model": …}, as BootstrapFinetune's program is saved, and as
// DSPy's Predict.load_state reads it back), by predictor name; a state
// saved flat (a bare predictor) is under "self". Predictors without a
// model of their own are left out.
func StateModels(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseStateModels(data)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return m, nil
}

// ParseStateModels is StateModels on a state file's contents.
func ParseStateModels(data []byte) (map[string]string, error) {
	v, err := pyjson.Decode(data)
	if err != nil {
		return nil, err
	}
	root, ok := v.(pyjson.Object)
	if !ok {
		return nil, errors.New("expected a JSON object")
	}
	out := map[string]string{}
	model := func(st any) (string, bool) {
		obj, ok := st.(pyjson.Object)
		if !ok {
			return "", false
		}
		l, _ := obj.Get("lm")
		lo, ok := l.(pyjson.Object)
		if !ok {
			return "", false
		}
		name, _ := lo.Get("model")
		s, ok := name.(string)
		return s, ok && s != ""
	}
	if _, flat := root.Get("signature"); flat {
		if m, ok := model(root); ok {
			out["self"] = m
		}
		return out, nil
	}
	for _, mem := range root {
		if m, ok := model(mem.Value); ok {
			out[mem.Key] = m
		}
	}
	return out, nil
}

// ContextModel is an LM that sends every request to model through the
// LM the call's context carries (module.WithLM): a predictor given it runs
// on model through the program file's endpoint, whichever that is when it
// runs. A DSPy model name's LiteLLM provider prefix ("openai/") is dropped,
// as LiteLLM drops it.
func ContextModel(model string) *Model {
	return &Model{next: contextLM{}, model: strings.TrimPrefix(model, "openai/")}
}

// contextLM is the LM of the call's context.
type contextLM struct{}

func (contextLM) Model() string { return "" }

func (contextLM) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	next := module.SettingsFrom(ctx).LM
	if next == nil {
		return nil, module.ErrNoLM
	}
	return next.Complete(ctx, req)
}

func (contextLM) Stream(ctx context.Context, req *lm.Request) iter.Seq2[lm.Delta, error] {
	next := module.SettingsFrom(ctx).LM
	if s, ok := next.(lm.Streamer); ok {
		return s.Stream(ctx, req)
	}
	return func(yield func(lm.Delta, error) bool) {
		if next == nil {
			yield(lm.Delta{}, module.ErrNoLM)
			return
		}
		yield(lm.Delta{}, fmt.Errorf("%w: the endpoint of %s does not stream", lm.ErrBadRequest, req.Model))
	}
}

// UseModels gives each predictor of p named in models (StateModels) its
// own LM: ContextModel of that model. A model equal to defaultModel (the
// program file's) leaves the predictor on the context's LM. A bare
// predictor's model is under "self".
func UseModels(p module.Program, models map[string]string, defaultModel string) {
	named := p.NamedPredictors()
	for _, np := range named {
		m, ok := models[np.Name]
		if !ok && len(named) == 1 {
			m, ok = models["self"]
		}
		if !ok || strings.TrimPrefix(m, "openai/") == defaultModel {
			continue
		}
		np.Predictor.SetLM(ContextModel(m))
	}
}
