package adapter

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
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
	Messages       []lm.Message    `json:"messages"`
	ResponseSchema json.RawMessage `json:"response_schema"`
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
				if string(want.ResponseSchema) == "null" || want.ResponseSchema == nil {
					if err == nil {
						t.Errorf("DSPy refuses a structured-output schema here, dspex built %v", schema)
					}
					return
				}
				if err != nil {
					t.Fatalf("ResponseSchema: %v", err)
				}
				// Compared as text: key order matters (models generate
				// properties in schema order), so no maps on either side.
				gotJSON, wantJSON := indentJSON(t, pyjson.Dumps(schema, -1)), indentJSON(t, string(want.ResponseSchema))
				if diff := cmp.Diff(wantJSON, gotJSON); diff != "" {
					t.Errorf("response schema differs (-dspy +dspex):\n%s", diff)
				}
			})
		}
	}
}

// indentJSON re-indents JSON text, keeping its key order.
func indentJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(s), "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return b.String()
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
