package program

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

var update = flag.Bool("update", false, "rewrite golden files")

const stateDir = "../../testdata/golden/state"

// qaProgram mirrors the DSPy program in gen_dspy_state.py.
type qaProgram struct {
	Generate  *module.ChainOfThought
	Summarize *module.Predict
}

func newQA() *qaProgram {
	return &qaProgram{
		Generate:  module.NewChainOfThought(signature.MustParse("question, context: list[str] -> answer")),
		Summarize: module.NewPredict(signature.MustParse("answer -> summary, confidence: float")),
	}
}

func (q *qaProgram) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	a, err := q.Generate.Forward(ctx, in)
	if err != nil {
		return nil, err
	}
	return q.Summarize.Forward(ctx, module.Inputs{"answer": a.String("answer")})
}

func (q *qaProgram) NamedPredictors() []module.NamedPredictor {
	return module.Children(module.Child{Name: "generate", Program: q.Generate}, module.Child{Name: "summarize", Program: q.Summarize})
}

func (q *qaProgram) Clone() module.Program {
	return &qaProgram{Generate: module.CloneAs(q.Generate), Summarize: module.CloneAs(q.Summarize)}
}

var qaInputs = map[string]map[string]any{
	"generate.predict": {"question": "What is the capital of France?", "context": []any{"Paris is the capital of France.", "France is in Europe."}},
	"summarize":        {"answer": "Paris"},
}

func prompts(t *testing.T, p module.Program) map[string][]lm.Message {
	t.Helper()
	out := map[string][]lm.Message{}
	for _, np := range p.NamedPredictors() {
		msgs, err := (&adapter.ChatAdapter{}).Format(np.Predictor.Signature(), np.Predictor.Demos(), qaInputs[np.Name])
		if err != nil {
			t.Fatal(err)
		}
		out[np.Name] = msgs
	}
	return out
}

func dspyPrompts(t *testing.T) map[string][]lm.Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "dspy_prompts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]lm.Message
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// A state file saved by DSPy 3.4.1 loads into the matching DSPEx program,
// which then sends exactly the prompts DSPy sends.
func TestLoadDSPyState(t *testing.T) {
	qa := newQA()
	if err := LoadStateFile(filepath.Join(stateDir, "dspy_saved.json"), qa); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dspyPrompts(t), prompts(t, qa)); diff != "" {
		t.Errorf("prompts after loading DSPy's state differ from DSPy's (-dspy +dspex):\n%s", diff)
	}
}

// Save → load gives byte-identical prompts, and the saved file is stable.
func TestSaveLoadRoundTrip(t *testing.T) {
	qa := newQA()
	if err := LoadStateFile(filepath.Join(stateDir, "dspy_saved.json"), qa); err != nil {
		t.Fatal(err)
	}
	qa.Summarize.SetParams(lm.Params{Temperature: lm.Float(0.7), MaxTokens: lm.Int(64)})
	var buf bytes.Buffer
	if err := SaveState(&buf, qa); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join(stateDir, "dspex_saved.json")
	if *update {
		os.WriteFile(golden, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("saved state differs from %s (-golden +got):\n%s", golden, diff)
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := SaveStateFile(path, qa); err != nil {
		t.Fatal(err)
	}
	fresh := newQA()
	if err := LoadStateFile(path, fresh); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(prompts(t, qa), prompts(t, fresh)); diff != "" {
		t.Errorf("prompts changed across save and load:\n%s", diff)
	}
	if p := fresh.Summarize.Params(); p.Temperature == nil || *p.Temperature != 0.7 || *p.MaxTokens != 64 {
		t.Errorf("config not restored: %+v", p)
	}
}

// Whitespace-only instructions clean to none; saved and loaded they stay
// none, as DSPy's dump_state and load_state keep them (load_state sets
// them through the instructions setter, which never puts the default in).
func TestEmptyInstructionsSurviveSaveAndLoad(t *testing.T) {
	p := module.NewPredict(signature.MustParse("q -> a").WithInstructions(" \u3000 "))
	if got := p.Signature().Instructions(); got != "" {
		t.Fatalf("instructions = %q, want none", got)
	}
	var buf bytes.Buffer
	if err := SaveState(&buf, p); err != nil {
		t.Fatal(err)
	}
	fresh := module.NewPredict(signature.MustParse("q -> a"))
	if err := LoadState("state.json", buf.Bytes(), fresh); err != nil {
		t.Fatal(err)
	}
	if got := fresh.Signature().Instructions(); got != "" {
		t.Errorf("instructions after load = %q, want none", got)
	}
}

func TestSaveStateKeepsExtraParams(t *testing.T) {
	p := module.NewPredict(signature.MustParse("q -> a"),
		module.WithConfig(lm.Params{Temperature: lm.Float(0.5), Extra: map[string]any{"reasoning_effort": "low", "top_k": 40}}))
	var buf bytes.Buffer
	if err := SaveState(&buf, p); err != nil {
		t.Fatal(err)
	}
	q := module.NewPredict(signature.MustParse("q -> a"))
	if err := LoadState("x.json", buf.Bytes(), q); err != nil {
		t.Fatal(err)
	}
	got := q.Params()
	if got.Temperature == nil || *got.Temperature != 0.5 || got.Extra["reasoning_effort"] != "low" || got.Extra["top_k"] != int64(40) {
		t.Errorf("params after save and load = %+v, want temperature 0.5 and both extra fields:\n%s", got, buf.String())
	}
}

func TestSaveBarePredictIsFlat(t *testing.T) {
	p := module.NewPredict(signature.MustParse("q -> a"))
	var buf bytes.Buffer
	if err := SaveState(&buf, p); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "{\n  \"traces\": []") {
		t.Errorf("bare Predict not saved flat:\n%s", buf.String())
	}
	q := module.NewPredict(signature.MustParse("q -> a"))
	if err := LoadState("x.json", buf.Bytes(), q); err != nil {
		t.Fatal(err)
	}
}

// selfWrapper runs a Predict and names it "self", as the program
// KNNFewShot compiles does.
type selfWrapper struct{ *module.Predict }

func (w selfWrapper) Clone() module.Program { return selfWrapper{w.Predict.Copy()} }

// A program whose one predictor is "self" is, in DSPy, a Predict: its
// state is saved flat, so that a plain Predict (dspex eval --state, DSPy's
// Predict.load) loads it; the nested form dspex wrote before still loads.
func TestSaveSelfWrapperIsFlat(t *testing.T) {
	p := module.NewPredict(signature.MustParse("q -> a"))
	p.SetDemos([]example.Example{example.New(map[string]any{"q": "1+1", "a": "2"})})
	var buf bytes.Buffer
	if err := SaveState(&buf, selfWrapper{p}); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	if _, nested := top["self"]; nested || top["signature"] == nil || top["demos"] == nil {
		t.Fatalf("self wrapper not saved flat:\n%s", buf.String())
	}
	q := module.NewPredict(signature.MustParse("q -> a"))
	if err := LoadState("flat.json", buf.Bytes(), q); err != nil {
		t.Fatalf("a Predict does not load the wrapper's state: %v", err)
	}
	if len(q.Demos()) != 1 {
		t.Errorf("loaded %d demos, want 1", len(q.Demos()))
	}

	nested := []byte(`{"self": ` + strings.TrimSuffix(buf.String(), "\n") + `, "metadata": {}}`)
	for _, target := range []module.Program{module.NewPredict(signature.MustParse("q -> a")), selfWrapper{module.NewPredict(signature.MustParse("q -> a"))}} {
		if err := LoadState("nested.json", nested, target); err != nil {
			t.Errorf("%T: nested state: %v", target, err)
		} else if n := len(target.NamedPredictors()[0].Predictor.Demos()); n != 1 {
			t.Errorf("%T: nested state loaded %d demos, want 1", target, n)
		}
	}
}

func TestLoadStateRejectsMismatchAllOrNothing(t *testing.T) {
	saved, err := os.ReadFile(filepath.Join(stateDir, "dspy_saved.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data string
		want string
	}{
		{"truncated", string(saved[:len(saved)/2]), "not valid JSON"},
		{"not an object", "[1, 2]", "expected a JSON object"},
		{"missing predictor", strings.Replace(string(saved), `"summarize"`, `"summary_step"`, 1), `no state for predictor "summarize"`},
		{"extra predictor", strings.Replace(string(saved), `"metadata"`, `"rogue": {}, "metadata"`, 1), `predictor "rogue", which the program does not have`},
		{"field count", strings.Replace(string(saved), `,
        {
          "prefix": "Confidence:",
          "description": "${confidence}"
        }`, ``, 1), "has 2 fields"},
		{"bad field", strings.Replace(string(saved), `"prefix": "Summary:"`, `"prefix": 7`, 1), `needs string "prefix"`},
		{"bad demos", strings.Replace(string(saved), `"demos": [
      {
        "answer": "Rome"`, `"demos": [
      "oops", {
        "answer": "Rome"`, 1), "demo 1 is not an object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			qa := newQA()
			before := prompts(t, qa)
			err := LoadState("s.json", []byte(c.data), qa)
			var se *StateError
			if err == nil || !strings.Contains(err.Error(), c.want) || !asStateError(err, &se) {
				t.Fatalf("err = %v, want StateError containing %q", err, c.want)
			}
			if diff := cmp.Diff(before, prompts(t, qa)); diff != "" {
				t.Errorf("a failed load changed the program:\n%s", diff)
			}
		})
	}
}

func asStateError(err error, target **StateError) bool {
	se, ok := err.(*StateError)
	*target = se
	return ok
}

// A DSPy state file whose demos have keys out of signature order, dicts in
// unsorted key order, integers beyond int64 and keys the signature lacks
// (gen_dspy_ordered_state.py) loads here, gives DSPy's prompts with both
// adapters, and saves back with every demo as DSPy wrote it.
func TestLoadOrderedDSPyState(t *testing.T) {
	p := module.NewPredict(signature.MustParse("query: dict, n: int -> result: dict, total: int"))
	file := filepath.Join(stateDir, "ordered_saved.json")
	if err := LoadStateFile(file, p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "ordered_prompts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]lm.Message
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	var inputs example.Example
	if err := inputs.UnmarshalJSON([]byte(`{"query": {"k2": 1, "k1": [{"b": 1, "a": 2}]}, "n": 18446744073709551616}`)); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]adapter.Adapter{"chat": &adapter.ChatAdapter{}, "json": adapter.JSONAdapter{}} {
		got, err := a.Format(p.Signature(), p.Demos(), inputs.Map())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want[name], got); diff != "" {
			t.Errorf("%s prompts differ from DSPy's (-dspy +dspex):\n%s", name, diff)
		}
	}
	var buf bytes.Buffer
	if err := SaveState(&buf, p); err != nil {
		t.Fatal(err)
	}
	demos := func(data []byte) string {
		v, err := pyjson.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := v.(pyjson.Object).Get("demos")
		return pyjson.Dumps(d, 2)
	}
	dspy, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(demos(dspy), demos(buf.Bytes())); diff != "" {
		t.Errorf("saved demos differ from DSPy's (-dspy +dspex):\n%s", diff)
	}
}
