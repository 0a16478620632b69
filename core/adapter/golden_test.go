package adapter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/internal/pyjson"
)

// The golden files are written by DSPy itself (testdata/golden/adapter/
// gen_dspy_golden.py); these Go types mirror the pydantic models there.
type Address struct {
	City    string `json:"city"`
	Country string `json:"country"`
}

type Person struct {
	Name    string   `json:"name"`
	Address Address  `json:"address"`
	Tags    []string `json:"tags"`
}

type Summary struct {
	Headline string  `json:"headline"`
	Score    float64 `json:"score"`
}

var goldenTypes = signature.Types{
	"Address": signature.MustObjectOf[Address](),
	"Person":  signature.MustObjectOf[Person](),
	"Summary": signature.MustObjectOf[Summary](),
}

type goldenCase struct {
	Name         string            `json:"name"`
	Signature    string            `json:"signature"`
	Instructions string            `json:"instructions"`
	Descs        map[string]string `json:"descs"`
	CoT          bool              `json:"cot"`
	Demos        []json.RawMessage `json:"demos"`
	Inputs       json.RawMessage   `json:"inputs"`
}

type goldenFile struct {
	Messages       []lm.Message   `json:"messages"`
	ResponseSchema map[string]any `json:"response_schema"`
}

const goldenDir = "../../testdata/golden/adapter"

func loadCases(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

func (c goldenCase) build(t *testing.T) (*signature.Signature, []example.Example, map[string]any) {
	t.Helper()
	sig, err := signature.ParseWith(c.Signature, goldenTypes)
	if err != nil {
		t.Fatal(err)
	}
	sig = sig.WithInstructions(c.Instructions)
	for name, desc := range c.Descs {
		if sig, err = sig.WithDesc(name, desc); err != nil {
			t.Fatal(err)
		}
	}
	if c.CoT {
		if sig, err = sig.PrependOutput(signature.Field{Name: "reasoning"}); err != nil {
			t.Fatal(err)
		}
	}
	var demos []example.Example
	for _, raw := range c.Demos {
		var d example.Example
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		demos = append(demos, d)
	}
	var inputs example.Example
	if err := json.Unmarshal(c.Inputs, &inputs); err != nil {
		t.Fatal(err)
	}
	return sig, demos, inputs.Map()
}

func TestGoldenPrompts(t *testing.T) {
	adapters := map[string]Adapter{"chat": &ChatAdapter{}, "json": JSONAdapter{}}
	for _, c := range loadCases(t) {
		for name, a := range adapters {
			t.Run(c.Name+"."+name, func(t *testing.T) {
				sig, demos, inputs := c.build(t)
				var want goldenFile
				b, err := os.ReadFile(filepath.Join(goldenDir, c.Name+"."+name+".json"))
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(b, &want); err != nil {
					t.Fatal(err)
				}
				got, err := a.Format(sig, demos, inputs)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want.Messages, got); diff != "" {
					t.Errorf("messages differ from DSPy's (-dspy +dspex):\n%s", diff)
				}
				if name != "json" {
					return
				}
				schema, err := ResponseSchema(sig)
				if want.ResponseSchema == nil {
					if err == nil {
						t.Errorf("DSPy refuses a structured-output schema here, dspex built %v", schema)
					}
					return
				}
				if err != nil {
					t.Fatalf("ResponseSchema: %v", err)
				}
				// Compare as JSON sees them (numbers as float64).
				var gotSchema map[string]any
				if b, err := json.Marshal(schema); err != nil || json.Unmarshal(b, &gotSchema) != nil {
					t.Fatalf("schema does not survive JSON: %v", err)
				}
				schema = gotSchema
				normalizeRequired(want.ResponseSchema)
				normalizeRequired(schema)
				if diff := cmp.Diff(want.ResponseSchema, schema); diff != "" {
					t.Errorf("response schema differs (-dspy +dspex):\n%s", diff)
				}
			})
		}
	}
}

// normalizeRequired sorts every "required" list: its order carries no meaning.
func normalizeRequired(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == "required" {
				if arr, ok := e.([]any); ok {
					sort.Slice(arr, func(i, j int) bool { return pyjson.Str(arr[i]) < pyjson.Str(arr[j]) })
				}
			}
			normalizeRequired(e)
		}
	case []any:
		for _, e := range x {
			normalizeRequired(e)
		}
	}
}

// TestGoldenJSONParse parses LM answers with JSONAdapter and compares the
// fields with what DSPy 3.4.1's JSONAdapter.parse returned for the same
// answers (testdata/golden/adapter/gen_dspy_parse.py): a str field given a
// JSON value holds Python's str() of it, dicts keep the LM's key order and
// integers every digit.
func TestGoldenJSONParse(t *testing.T) {
	var cases []struct {
		Name       string `json:"name"`
		Signature  string `json:"signature"`
		Completion string `json:"completion"`
	}
	b, err := os.ReadFile(filepath.Join(goldenDir, "parse_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(filepath.Join(goldenDir, "parse.json"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := pyjson.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	results := golden.([]any)
	if len(results) != len(cases) {
		t.Fatalf("%d results for %d cases; regenerate parse.json", len(results), len(cases))
	}
	for i, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			want := results[i].(pyjson.Object)
			if name, _ := want.Get("name"); name != c.Name {
				t.Fatalf("result %d is for %v; regenerate parse.json", i, name)
			}
			sig := signature.MustParse(c.Signature)
			got, err := JSONAdapter{}.Parse(sig, c.Completion)
			if _, dspyFailed := want.Get("error"); dspyFailed {
				if err == nil {
					t.Errorf("DSPy refuses this answer, dspex parsed %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fv, _ := want.Get("fields")
			fields := fv.(pyjson.Object)
			if len(got) != len(fields) {
				t.Errorf("fields %v, DSPy's %s", got, pyjson.Dumps(fields, -1))
			}
			for _, m := range fields {
				f, _ := sig.Field(m.Key)
				if g, w := pyjson.Dumps(f.Type.Normalize(got[m.Key]), -1), pyjson.Dumps(m.Value, -1); g != w {
					t.Errorf("field %s = %s\nDSPy's     %s", m.Key, g, w)
				}
			}
		})
	}
}
