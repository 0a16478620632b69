package program

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/version"
)

// Program state files use DSPy's JSON format, so that a file saved by DSPy
// for the same program structure loads here and one saved here loads in
// DSPy:
//
//	{"<predictor name>": {"traces": [], "train": [], "demos": [...],
//	                      "signature": {"instructions": "...",
//	                                    "fields": [{"prefix": "Question:", "description": "${question}"}, ...]},
//	                      "lm": null},
//	 ...,
//	 "metadata": {"dependency_versions": {...}}}
//
// A program that is a bare Predict is saved flat (its state at the top
// level), as DSPy saves a bare dspy.Predict; so is a program whose one
// predictor is named "self" — a wrapper that runs a Predict, such as the
// program KNNFewShot compiles from one, which in DSPy is that Predict with
// another forward. Loading into such a program also accepts the state
// nested under "self", as dspex wrote it before. API keys and base URLs are
// never written. A predictor's own sampling parameters are saved under
// "config", which DSPy also reads back into Predict.config.

// StateError is a state file that does not fit the program.
type StateError struct {
	File   string
	Reason string
	Err    error
}

func (e *StateError) Error() string { return "state file " + e.File + ": " + e.Reason }
func (e *StateError) Unwrap() error { return e.Err }

// maxStateSize bounds state files.
const maxStateSize = 256 << 20

// SaveState writes p's state in DSPy's format.
func SaveState(w io.Writer, p module.Program) error {
	var root pyjson.Object
	if pr, ok := barePredict(p); ok {
		root = predictorState(pr)
	} else {
		for _, np := range p.NamedPredictors() {
			root = append(root, pyjson.Member{Key: np.Name, Value: predictorState(np.Predictor)})
		}
	}
	root = append(root, pyjson.Member{Key: "metadata", Value: pyjson.Object{
		// DSPy checks the versions it knows (python, dspy, cloudpickle)
		// against its own; none are claimed here.
		{Key: "dependency_versions", Value: pyjson.Object{}},
		{Key: "dspex", Value: pyjson.Object{{Key: "version", Value: version.String()}}},
	}})
	_, err := io.WriteString(w, pyjson.Dumps(root, 2)+"\n")
	return err
}

// SaveStateFile writes p's state to path, atomically (a temporary file
// renamed into place), so a crash never leaves a half-written state file.
func SaveStateFile(path string, p module.Program) error {
	var buf bytes.Buffer
	if err := SaveState(&buf, p); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("save state %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save state %s: %w", path, err)
	}
	return nil
}

func predictorState(p *module.Predict) pyjson.Object {
	sig := p.Signature()
	fields := make([]any, 0, sig.NumInputs()+sig.NumOutputs())
	for _, f := range sig.Fields() {
		desc := f.Desc
		if desc == "" {
			desc = "${" + f.Name + "}"
		}
		fields = append(fields, pyjson.Object{{Key: "prefix", Value: f.Prefix}, {Key: "description", Value: desc}})
	}
	demos := make([]any, 0)
	for _, d := range p.Demos() {
		// In the demo's own key order, as DSPy writes a demo (a dict).
		obj := make(pyjson.Object, 0, d.Len())
		for _, k := range d.Keys() {
			v, _ := d.Get(k)
			if f, ok := sig.Field(k); ok {
				obj = append(obj, pyjson.Member{Key: k, Value: f.Type.Normalize(v)})
			} else {
				obj = append(obj, pyjson.Member{Key: k, Value: pyjson.Normalize(v)})
			}
		}
		demos = append(demos, obj)
	}
	st := pyjson.Object{
		{Key: "traces", Value: []any{}},
		{Key: "train", Value: []any{}},
		{Key: "demos", Value: demos},
		{Key: "signature", Value: pyjson.Object{
			{Key: "instructions", Value: sig.Instructions()},
			{Key: "fields", Value: fields},
		}},
	}
	var lmState any
	if own := p.LM(); own != nil {
		lmState = pyjson.Object{{Key: "model", Value: own.Model()}}
	}
	st = append(st, pyjson.Member{Key: "lm", Value: lmState})
	if cfg := paramsObject(p.Params()); len(cfg) > 0 {
		st = append(st, pyjson.Member{Key: "config", Value: cfg})
	}
	return st
}

func paramsObject(p lm.Params) pyjson.Object {
	var o pyjson.Object
	add := func(k string, v any) { o = append(o, pyjson.Member{Key: k, Value: v}) }
	if p.Temperature != nil {
		add("temperature", *p.Temperature)
	}
	if p.MaxTokens != nil {
		add("max_tokens", *p.MaxTokens)
	}
	if p.TopP != nil {
		add("top_p", *p.TopP)
	}
	if p.N != nil {
		add("n", *p.N)
	}
	if len(p.Stop) > 0 {
		add("stop", p.Stop)
	}
	if p.Seed != nil {
		add("seed", *p.Seed)
	}
	// Provider-specific fields follow, sorted; LoadState reads unknown
	// keys back into Extra.
	for _, k := range slices.Sorted(maps.Keys(p.Extra)) {
		if _, dup := o.Get(k); !dup {
			add(k, pyjson.Normalize(p.Extra[k]))
		}
	}
	return o
}

// LoadStateFile reads a state file (DSPy's format) into p. See LoadState.
func LoadStateFile(path string, p module.Program) error {
	info, err := os.Stat(path)
	if err != nil {
		return &StateError{File: path, Reason: "cannot read it", Err: err}
	}
	if info.Size() > maxStateSize {
		return &StateError{File: path, Reason: fmt.Sprintf("%d bytes is more than a state file may have (%d)", info.Size(), maxStateSize)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return &StateError{File: path, Reason: "cannot read it", Err: err}
	}
	return LoadState(path, data, p)
}

// predictorUpdate is a predictor's new state, checked before any is applied.
type predictorUpdate struct {
	target *module.Predict
	sig    *signature.Signature
	demos  []example.Example
	params *lm.Params
}

// LoadState reads state (DSPy's format; name is used in errors) into p.
// Loading checks the whole file against the program first — the same
// predictor names, the same number of fields per signature, well-formed
// demos — and changes nothing unless everything fits.
func LoadState(name string, data []byte, p module.Program) error {
	fail := func(format string, args ...any) error {
		return &StateError{File: name, Reason: fmt.Sprintf(format, args...)}
	}
	v, err := pyjson.Decode(data)
	if err != nil {
		return &StateError{File: name, Reason: "not valid JSON (truncated or corrupt?): " + err.Error(), Err: err}
	}
	root, ok := v.(pyjson.Object)
	if !ok {
		return fail("expected a JSON object at the top level")
	}
	var updates []predictorUpdate
	if pr, ok := barePredict(p); ok {
		_, flat := root.Get("signature")
		if nested, ok := root.Get("self"); ok && !flat {
			if obj, ok := nested.(pyjson.Object); ok {
				root = obj
			}
		}
		u, err := decodePredictor(root, pr)
		if err != nil {
			return fail("%v", err)
		}
		updates = append(updates, u)
	} else {
		named := p.NamedPredictors()
		want := make([]string, len(named))
		for i, np := range named {
			want[i] = np.Name
			st, ok := root.Get(np.Name)
			if !ok {
				return fail("no state for predictor %q (the file has %s)", np.Name, keyList(root))
			}
			obj, ok := st.(pyjson.Object)
			if !ok {
				return fail("predictor %q: expected an object", np.Name)
			}
			u, err := decodePredictor(obj, np.Predictor)
			if err != nil {
				return fail("predictor %q: %v", np.Name, err)
			}
			updates = append(updates, u)
		}
		for _, m := range root {
			if m.Key != "metadata" && !slices.Contains(want, m.Key) {
				return fail("it has predictor %q, which the program does not have (the program has %s)", m.Key, strings.Join(quoteEach(want), ", "))
			}
		}
	}
	for _, u := range updates {
		u.target.SetSignature(u.sig)
		u.target.SetDemos(u.demos)
		if u.params != nil {
			u.target.SetParams(*u.params)
		}
	}
	return nil
}

// barePredict returns the Predict a program's state is that of, saved flat:
// p itself when it is a Predict, else its one predictor when that is named
// "self" (p runs a Predict and names it as DSPy names a Predict's own
// parameter).
func barePredict(p module.Program) (*module.Predict, bool) {
	if pr, ok := p.(*module.Predict); ok {
		return pr, true
	}
	if named := p.NamedPredictors(); len(named) == 1 && named[0].Name == "self" && named[0].Predictor != nil {
		return named[0].Predictor, true
	}
	return nil, false
}

func decodePredictor(st pyjson.Object, p *module.Predict) (predictorUpdate, error) {
	u := predictorUpdate{target: p}
	sigV, ok := st.Get("signature")
	if !ok {
		return u, errors.New(`missing "signature"`)
	}
	sigObj, ok := sigV.(pyjson.Object)
	if !ok {
		return u, errors.New(`"signature" is not an object`)
	}
	instr, _ := sigObj.Get("instructions")
	instructions, ok := instr.(string)
	if !ok {
		return u, errors.New(`"signature.instructions" is not a string`)
	}
	fv, _ := sigObj.Get("fields")
	fields, ok := fv.([]any)
	if !ok {
		return u, errors.New(`"signature.fields" is not a list`)
	}
	sig := p.Signature()
	all := sig.Fields()
	if len(fields) != len(all) {
		return u, fmt.Errorf("the file's signature has %d fields, the program's %q has %d", len(fields), sig.String(), len(all))
	}
	for i, f := range fields {
		obj, ok := f.(pyjson.Object)
		if !ok {
			return u, fmt.Errorf("signature field %d is not an object", i+1)
		}
		prefix, okP := valueString(obj, "prefix")
		desc, okD := valueString(obj, "description")
		if !okP || !okD {
			return u, fmt.Errorf("signature field %d (%s) needs string \"prefix\" and \"description\"", i+1, all[i].Name)
		}
		if desc == "${"+all[i].Name+"}" {
			desc = ""
		}
		var err error
		sig, err = sig.WithField(all[i].Name, func(fl *signature.Field) { fl.Desc, fl.Prefix = desc, prefix })
		if err != nil {
			return u, err
		}
	}
	// Last, since a change of fields re-derives instructions; and as DSPy
	// loads them, so that saved empty instructions stay empty.
	u.sig = sig.WithLoadedInstructions(instructions)
	dv, _ := st.Get("demos")
	if dv != nil {
		demos, ok := dv.([]any)
		if !ok {
			return u, errors.New(`"demos" is not a list`)
		}
		for i, d := range demos {
			obj, ok := d.(pyjson.Object)
			if !ok {
				return u, fmt.Errorf("demo %d is not an object", i+1)
			}
			u.demos = append(u.demos, example.FromObject(obj))
		}
	}
	if cv, ok := st.Get("config"); ok && cv != nil {
		obj, ok := cv.(pyjson.Object)
		if !ok {
			return u, errors.New(`"config" is not an object`)
		}
		params, err := decodeParams(obj)
		if err != nil {
			return u, err
		}
		u.params = &params
	}
	return u, nil
}

func decodeParams(o pyjson.Object) (lm.Params, error) {
	var p lm.Params
	for _, m := range o {
		switch m.Key {
		case "temperature", "top_p":
			f, ok := number(m.Value)
			if !ok {
				return p, fmt.Errorf("config.%s is not a number", m.Key)
			}
			if m.Key == "temperature" {
				p.Temperature = lm.Float(f)
			} else {
				p.TopP = lm.Float(f)
			}
		case "max_tokens", "n", "seed":
			i, ok := m.Value.(int64)
			if !ok {
				return p, fmt.Errorf("config.%s is not an integer", m.Key)
			}
			switch m.Key {
			case "max_tokens":
				p.MaxTokens = lm.Int(int(i))
			case "n":
				p.N = lm.Int(int(i))
			default:
				p.Seed = lm.Int64(i)
			}
		case "stop":
			arr, ok := m.Value.([]any)
			if !ok {
				return p, errors.New("config.stop is not a list")
			}
			for _, s := range arr {
				str, ok := s.(string)
				if !ok {
					return p, errors.New("config.stop holds a non-string")
				}
				p.Stop = append(p.Stop, str)
			}
		default:
			if p.Extra == nil {
				p.Extra = map[string]any{}
			}
			p.Extra[m.Key] = pyjson.Plain(m.Value)
		}
	}
	return p, nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func valueString(o pyjson.Object, key string) (string, bool) {
	v, _ := o.Get(key)
	s, ok := v.(string)
	return s, ok
}

func keyList(o pyjson.Object) string {
	var keys []string
	for _, m := range o {
		if m.Key != "metadata" {
			keys = append(keys, m.Key)
		}
	}
	if len(keys) == 0 {
		return "no predictors"
	}
	return strings.Join(quoteEach(keys), ", ")
}

func quoteEach(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}
