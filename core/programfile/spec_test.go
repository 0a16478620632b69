package programfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/module"
)

const validSpec = `lm:
  model: gpt-4o-mini
  base_url: ${DSPEX_TEST_BASE:-http://127.0.0.1:9/v1}
  temperature: 0.2
program:
  module: chain_of_thought
  signature: "question -> answer: int"
  instructions: Count.
  fields:
    answer: {desc: a number}
  demos:
    - {question: "1+1?", reasoning: "one and one", answer: 2}
  config: {temperature: 0.7}
`

func TestParseExpandsEmbeddingsEnv(t *testing.T) {
	t.Setenv("DSPEX_TEST_EMBED_MODEL", "embed-small")
	spec, err := Parse("p.yaml", []byte(`lm: {model: m}
embeddings:
  model: ${DSPEX_TEST_EMBED_MODEL}
  base_url: ${DSPEX_TEST_UNSET_BASE:-http://127.0.0.1:9/v1}
  headers: {X-Key: "${DSPEX_TEST_EMBED_MODEL}-h"}
program: {module: predict, signature: "q -> a"}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := spec.Embeddings
	if e.Model != "embed-small" || e.BaseURL != "http://127.0.0.1:9/v1" || e.Headers["X-Key"] != "embed-small-h" {
		t.Errorf("embeddings not expanded: %+v", e)
	}
}

func TestParseValid(t *testing.T) {
	t.Setenv("DSPEX_TEST_BASE", "http://127.0.0.1:1234/v1")
	spec, err := Parse("p.yaml", []byte(validSpec))
	if err != nil {
		t.Fatal(err)
	}
	if spec.LM.BaseURL != "http://127.0.0.1:1234/v1" {
		t.Errorf("env not expanded: %q", spec.LM.BaseURL)
	}
	prog, err := spec.NewProgram()
	if err != nil {
		t.Fatal(err)
	}
	cot, ok := prog.(*module.ChainOfThought)
	if !ok {
		t.Fatalf("program is %T", prog)
	}
	sig := cot.Predict.Signature()
	if sig.String() != "question -> reasoning, answer: int" || sig.Instructions() != "Count." {
		t.Errorf("signature %s / %q", sig, sig.Instructions())
	}
	if f, _ := sig.Field("answer"); f.Desc != "a number" {
		t.Errorf("desc = %q", f.Desc)
	}
	if d := cot.Predict.Demos(); len(d) != 1 || d[0].String("answer") != "2" {
		t.Errorf("demos = %v", d)
	}
	if p := cot.Predict.Params(); p.Temperature == nil || *p.Temperature != 0.7 {
		t.Errorf("config = %+v", p)
	}
}

// Demos keep the file's key order (top level and nested), integers of any
// size, and keys the signature lacks (DSPy ignores those in prompts).
func TestDemosKeepOrder(t *testing.T) {
	spec, err := Parse("p.yaml", []byte(`lm: {model: m}
program:
  module: predict
  signature: "q: dict, n: int -> a"
  demos:
    - {a: "x", q: {zeta: 1, alpha: [2, {y: 1.5, x: null}]}, n: 12345678901234567890, source: wiki, m: 0x10, big: -98765432109876543210}
`))
	if err != nil {
		t.Fatal(err)
	}
	prog, err := spec.NewProgram()
	if err != nil {
		t.Fatal(err)
	}
	d := prog.(*module.Predict).Demos()[0]
	if got := strings.Join(d.Keys(), ","); got != "a,q,n,source,m,big" {
		t.Errorf("demo keys %s, want the file's order a,q,n,source,m,big", got)
	}
	for key, want := range map[string]string{
		"q":   `{'zeta': 1, 'alpha': [2, {'y': 1.5, 'x': None}]}`,
		"n":   "12345678901234567890",
		"m":   "16",
		"big": "-98765432109876543210",
	} {
		if got := d.String(key); got != want {
			t.Errorf("demo %s = %s, want %s", key, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", "p.yaml: file is empty"},
		{"malformed", "lm: [", "p.yaml"},
		{"no model", "lm:\n  base_url: x\nprogram:\n  module: predict\n  signature: a -> b\n", "p.yaml:1: lm.model: required"},
		{"unknown field", "lm:\n  model: m\n  modle: x\nprogram:\n  module: predict\n  signature: a -> b\n", `p.yaml:3: lm.modle: unknown field`},
		{"bad module", "lm: {model: m}\nprogram:\n  module: agent\n  signature: a -> b\n", `p.yaml:3: program.module: "agent" is not a module`},
		{"bad signature", "lm: {model: m}\nprogram:\n  module: predict\n  signature: \"a -> b: lst\"\n", `p.yaml:4: program.signature: signature "a -> b: lst": column 9: unknown type "lst"`},
		{"demo not a mapping", "lm: {model: m}\nprogram:\n  module: predict\n  signature: a -> b\n  demos:\n    - [a, b]\n", `p.yaml:6: a demo must be a mapping`},
		{"demo too large", "lm: {model: m}\nprogram:\n  module: predict\n  signature: a -> b\n  demos:\n    - {a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d], f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]}\n", `demo is larger than`},
		{"desc field", "lm: {model: m}\nprogram:\n  module: predict\n  signature: a -> b\n  fields:\n    z: {desc: x}\n", `program.fields.z: no field "z"`},
		{"timeout", "lm: {model: m, timeout: soon}\nprogram: {module: predict, signature: a -> b}\n", `lm.timeout: "soon" is not a positive duration`},
		{"response format", "lm: {model: m, response_format: xml}\nprogram: {module: predict, signature: a -> b}\n", `p.yaml:1: lm.response_format: "xml" is not a response format; expected auto, json_schema, json_object or none`},
		{"adapter", "lm: {model: m}\nadapter: xml\nprogram: {module: predict, signature: a -> b}\n", `p.yaml:2: adapter: "xml" is not an adapter`},
		{"wrong type", "lm: {model: m, temperature: hot}\nprogram: {module: predict, signature: a -> b}\n", `p.yaml:1: lm.temperature: expected a number, got "hot"`},
		{"wrong type nested", "lm: {model: m}\nmodels:\n  - name: t\n    model: x\n    pool: {size: many}\nprogram: {module: predict, signature: a -> b}\n", `p.yaml:5: models.0.pool.size: expected an integer, got "many"`},
		{"unknown field nested", "lm: {model: m}\ncache: {max_entries: 5}\nprogram: {module: predict, signature: a -> b}\n", `p.yaml:2: cache.max_entries: unknown field`},
		{"bad duration", "lm: {model: m}\ntraces:\n  max_age: forever\nprogram: {module: predict, signature: a -> b}\n", `p.yaml:3: traces.max_age: "forever" is not a duration`},
		{"base url without scheme", "# qa\nlm:\n  model: m\n  base_url: 127.0.0.1:8089/v1\nprogram: {module: predict, signature: a -> b}\n",
			`p.yaml:4: lm.base_url: base url "127.0.0.1:8089/v1" is not an absolute http or https url: it has no scheme; did you mean "http://127.0.0.1:8089/v1"?`},
		{"base url from env", "lm:\n  model: m\n  base_url: ${DSPEX_TEST_UNSET_BASE:-localhost:1/v1}\nprogram: {module: predict, signature: a -> b}\n",
			`p.yaml:3: lm.base_url: base url "localhost:1/v1"`},
		{"models base url", "lm: {model: m}\nmodels:\n  - name: t\n    model: m\n    base_url: \"ftp://h/v1\"\nprogram: {module: predict, signature: a -> b}\n",
			`p.yaml:5: models.0.base_url: base url "ftp://h/v1" is not an absolute http or https url`},
		{"embeddings base url", "lm: {model: m}\nembeddings:\n  model: e\n  base_url: \"http://bad host/v1\"\nprogram: {module: predict, signature: a -> b}\n",
			`p.yaml:4: embeddings.base_url: parse base url: invalid character " " in host name`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(c.yaml))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FileError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\ndoes not contain %q", err, c.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml: cannot read program file") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "ok.yaml")
	if err := os.WriteFile(p, []byte(validSpec), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(p); err != nil {
		t.Errorf("LoadFile: %v", err)
	}
}

// A program file may carry the plugin configuration (docs/plugins.md), which
// the core leaves to the bridge.
func TestParseAcceptsPluginsSection(t *testing.T) {
	spec, err := Parse("p.yaml", []byte(`lm: {model: m}
program: {module: predict, signature: "q -> a"}
plugins:
  python: .venv/bin/python
  plugins:
    echo: {args: ["-m", "dspex_plugins.echo"], capabilities: [echo]}
`))
	if err != nil {
		t.Fatalf("a plugins: section was refused: %v", err)
	}
	if spec.Plugins.Kind == 0 {
		t.Error("the plugins: section was not kept")
	}
}
