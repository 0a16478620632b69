package jsonrepair

import (
	"testing"

	"github.com/dspex/dspex/core/pyjson"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want string // pyjson.Dumps of the result; "" means not JSON-like
	}{
		{`{"a": 1, "b": [true, null]}`, `{"a": 1, "b": [true, null]}`},
		{"```json\n{\"a\": 1}\n```", `{"a": 1}`},
		{"```\n[1, 2]\n```", `[1, 2]`},
		{`{'a': 'it\'s', b: True, "c": None,}`, `{"a": "it's", "b": true, "c": null}`},
		{`[1, 2,, 3,]`, `[1, 2, 3]`},
		{`{"a": [1, {"b": "unterminated`, `{"a": [1, {"b": "unterminated"}]}`},
		{`{"a": 1 /* note */, // more` + "\n" + `"b": 2}`, `{"a": 1, "b": 2}`},
		{`{"a": 1, "a": 2}`, `{"a": 2}`},
		{`"\u00e9\ud83d\ude00"`, `"é😀"`},
		{`"\ud83d\u0041"`, "\"\ufffdA\""}, // a high surrogate without its pair
		{`"\ude00x"`, "\"\ufffdx\""},      // a lone low surrogate
		{`-1.5e3`, `-1500.0`},
		{`+7`, `7`},
		{`{"n": 12345678901234567890, "m": [-98765432109876543210]}`, `{"n": 12345678901234567890, "m": [-98765432109876543210]}`},
		{`+12345678901234567890`, `12345678901234567890`},
		{`“smart quotes”`, `"smart quotes"`},
		{`{"x": }`, `{"x": null}`},
		{`Paris`, ``},
		{`42 apples`, ``},
		{``, ``},
		{`{"a" 1}`, ``},
	}
	for _, c := range cases {
		v, ok := Parse(c.in)
		got := ""
		if ok {
			got = pyjson.Dumps(v, -1)
		}
		if got != c.want {
			t.Errorf("Parse(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestExtractObject(t *testing.T) {
	cases := []struct{ in, want string }{
		{`Here: {"a": {"b": "}"}} done`, `{"a": {"b": "}"}}`},
		{`no object`, ``},
		{`{"open": [1, 2`, `{"open": [1, 2`},
	}
	for _, c := range cases {
		got, _ := ExtractObject(c.in)
		if got != c.want {
			t.Errorf("ExtractObject(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDeepNestingIsBounded(t *testing.T) {
	deep := make([]byte, 0, 20000)
	for range 10000 {
		deep = append(deep, '[')
	}
	if _, ok := Parse(string(deep)); ok {
		t.Error("10000 levels of nesting accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"a": [1, 2.5, "x", true, null]}`, "```json\n{'a': 1,}\n```", `[[[`, `{"a": "\ud800"}`, `-Infinity`, `{a: b}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := Parse(s)
		if !ok {
			return
		}
		// Whatever was accepted must render as valid JSON that reads back the same.
		out := pyjson.Dumps(v, -1)
		back, err := pyjson.Decode([]byte(out))
		if err != nil {
			if containsNonFinite(v) {
				return // NaN and Infinity render as Python does, which JSON lacks
			}
			t.Fatalf("Parse(%q) rendered %q, which is not JSON: %v", s, out, err)
		}
		if again := pyjson.Dumps(back, -1); again != out {
			t.Fatalf("round trip changed %q to %q", out, again)
		}
	})
}

func containsNonFinite(v any) bool {
	switch x := v.(type) {
	case float64:
		return x != x || x > 1.7976931348623157e308 || x < -1.7976931348623157e308
	case []any:
		for _, e := range x {
			if containsNonFinite(e) {
				return true
			}
		}
	case pyjson.Object:
		for _, m := range x {
			if containsNonFinite(m.Value) {
				return true
			}
		}
	}
	return false
}
