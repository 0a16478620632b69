package pyjson

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
)

func TestFormatFloat(t *testing.T) {
	// Expected spellings are Python's repr() of the same floats.
	cases := []struct {
		in   float64
		want string
	}{
		{0.1, "0.1"}, {1, "1.0"}, {0.9, "0.9"}, {-2.5, "-2.5"}, {1e-05, "1e-05"},
		{0.0001, "0.0001"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
		{123456789012345680, "1.2345678901234568e+17"}, {1.5e-7, "1.5e-07"},
		{3.14159, "3.14159"}, {0, "0.0"}, {math.Copysign(0, -1), "-0.0"},
		{100, "100.0"}, {1.0 / 3, "0.3333333333333333"}, {2e22, "2e+22"},
	}
	for _, c := range cases {
		if got := FormatFloat(c.in); got != c.want {
			t.Errorf("FormatFloat(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDumps(t *testing.T) {
	type inner struct {
		City    string `json:"city"`
		Country string `json:"country"`
	}
	type person struct {
		Name    string   `json:"name"`
		Address inner    `json:"address"`
		Tags    []string `json:"tags"`
		Skip    string   `json:"-"`
		Opt     *int     `json:"opt,omitempty"`
	}
	cases := []struct {
		name   string
		in     any
		indent int
		want   string
	}{
		{"list", []any{"A1", "A2"}, -1, `["A1", "A2"]`},
		{"floats", []float64{0.1, 0.9}, -1, `[0.1, 0.9]`},
		{"struct order", person{Name: "Ada", Address: inner{"London", "UK"}, Tags: []string{"math", "code"}}, -1,
			`{"name": "Ada", "address": {"city": "London", "country": "UK"}, "tags": ["math", "code"]}`},
		{"map sorted", map[string]any{"b": 1, "a": true, "c": nil}, -1, `{"a": true, "b": 1, "c": null}`},
		{"escapes", "a\"b\\c\n<&>\u2028é\x01", -1, "\"a\\\"b\\\\c\\n<&>\u2028é\\u0001\""},
		{"indent", Object{{"answer", "A1"}, {"confidence", 0.9}, {"list", []any{1, 2}}, {"empty", []any{}}}, 2,
			"{\n  \"answer\": \"A1\",\n  \"confidence\": 0.9,\n  \"list\": [\n    1,\n    2\n  ],\n  \"empty\": []\n}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Dumps(c.in, c.indent); got != c.want {
				t.Errorf("Dumps = %q\nwant     %q", got, c.want)
			}
		})
	}
}

func TestStr(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{true, "True"}, {nil, "None"}, {3, "3"}, {2.0, "2.0"}, {"x", "x"}, {[]int{1}, "[1]"},
	}
	for _, c := range cases {
		if got := Str(c.in); got != c.want {
			t.Errorf("Str(%#v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDecodeKeepsOrderAndInts(t *testing.T) {
	v, err := Decode([]byte(`{"z": 1, "a": 1.0, "m": [2, 2.5e3]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := Dumps(v, -1); got != `{"z": 1, "a": 1.0, "m": [2, 2500.0]}` {
		t.Fatalf("round trip = %s", got)
	}
	if _, err := Decode([]byte(`{"a": 1} xyz`)); err == nil {
		t.Fatal("trailing data accepted")
	}
}

func TestRepeatedKeyKeepsFirstPositionAndLastValue(t *testing.T) {
	v, err := Decode([]byte(`{"a": 1, "b": 2, "a": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := Dumps(v, -1); got != `{"a": 3, "b": 2}` {
		t.Fatalf("Decode = %s, want Python's {\"a\": 3, \"b\": 2}", got)
	}
}

// TestPythonValues checks that JSON decoded here keeps its key order and
// every digit of its integers, and that json.dumps, repr and str of it are
// spelled as Python 3.11 spells them (expected strings printed by CPython).
func TestPythonValues(t *testing.T) {
	cases := []struct{ in, dumps, repr, str string }{
		{`{"b": 1, "a": {"y": [1, 2.5, true, null], "x": "it's"}}`,
			`{"b": 1, "a": {"y": [1, 2.5, true, null], "x": "it's"}}`,
			`{'b': 1, 'a': {'y': [1, 2.5, True, None], 'x': "it's"}}`,
			`{'b': 1, 'a': {'y': [1, 2.5, True, None], 'x': "it's"}}`},
		{`["a\"b", "q'\"", "tab\tnl\n\u0001\u007f\u00a0\u200b\ud83d\ude00\u00e9\\"]`,
			"[\"a\\\"b\", \"q'\\\"\", \"tab\\tnl\\n\\u0001\u007f\u00a0\u200b\U0001F600\u00e9\\\\\"]",
			`['a"b', 'q\'"', 'tab\tnl\n\x01\x7f\xa0\u200b` + "\U0001F600\u00e9" + `\\']`,
			`['a"b', 'q\'"', 'tab\tnl\n\x01\x7f\xa0\u200b` + "\U0001F600\u00e9" + `\\']`},
		{`{"big": 12345678901234567890, "neg": -98765432109876543210, "f": 1e-05, "g": 1e16, "i": 9223372036854775807, "j": 9223372036854775808}`,
			`{"big": 12345678901234567890, "neg": -98765432109876543210, "f": 1e-05, "g": 1e+16, "i": 9223372036854775807, "j": 9223372036854775808}`,
			`{'big': 12345678901234567890, 'neg': -98765432109876543210, 'f': 1e-05, 'g': 1e+16, 'i': 9223372036854775807, 'j': 9223372036854775808}`,
			`{'big': 12345678901234567890, 'neg': -98765432109876543210, 'f': 1e-05, 'g': 1e+16, 'i': 9223372036854775807, 'j': 9223372036854775808}`},
		{`12345678901234567890`, `12345678901234567890`, `12345678901234567890`, `12345678901234567890`},
		{`"x"`, `"x"`, `'x'`, `x`},
		{`[]`, `[]`, `[]`, `[]`},
		{`{}`, `{}`, `{}`, `{}`},
	}
	for _, c := range cases {
		v, err := Decode([]byte(c.in))
		if err != nil {
			t.Fatalf("Decode(%s): %v", c.in, err)
		}
		if got := Dumps(v, -1); got != c.dumps {
			t.Errorf("Dumps(%s) = %s\nwant %s", c.in, got, c.dumps)
		}
		if got := Repr(v); got != c.repr {
			t.Errorf("Repr(%s) = %s\nwant %s", c.in, got, c.repr)
		}
		if got := Str(v); got != c.str {
			t.Errorf("Str(%s) = %s\nwant %s", c.in, got, c.str)
		}
	}
}

func TestBigIntegers(t *testing.T) {
	huge, _ := new(big.Int).SetString("-98765432109876543210", 10)
	cases := []struct {
		in   any
		want string
	}{
		{uint64(math.MaxUint64), "18446744073709551615"},
		{huge, "-98765432109876543210"},
		{big.NewInt(42), "42"},
		{map[string]any{"n": huge}, `{"n": -98765432109876543210}`},
		{json.Number("12345678901234567890"), "12345678901234567890"},
	}
	for _, c := range cases {
		if got := Dumps(c.in, -1); got != c.want {
			t.Errorf("Dumps(%v) = %s, want %s", c.in, got, c.want)
		}
	}
	if v := Normalize(big.NewInt(42)); v != int64(42) {
		t.Errorf("Normalize(big 42) = %T %v, want int64 42", v, v)
	}
	// The model holds a copy: changing the caller's value changes nothing.
	n := new(big.Int).Set(huge)
	v := Normalize(n)
	n.SetInt64(0)
	if got := Str(v); got != "-98765432109876543210" {
		t.Errorf("normalized big int changed with its source: %s", got)
	}
	for _, bad := range []string{"", "+", "-", "1_000", "0x10", "1.5", "++1"} {
		if v, ok := ParseInt(bad); ok {
			t.Errorf("ParseInt(%q) = %v, want failure", bad, v)
		}
	}
}

// FuzzDecode checks that whatever Decode accepts, written back with Dumps,
// decodes to the same value (order, integers and all).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"b": 1, "a": [1.5, "x", null]}`, `123456789012345678901234567890`, `-1e400`, `{"a": {"a": {}}}`, `[true, false]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Decode([]byte(s))
		if err != nil {
			return
		}
		once := Dumps(v, -1)
		w, err := Decode([]byte(once))
		if err != nil {
			// Python writes floats outside JSON (inf, nan) as Infinity and
			// NaN, which JSON readers refuse; nothing else may fail.
			if strings.Contains(once, "Infinity") || strings.Contains(once, "NaN") {
				return
			}
			t.Fatalf("Dumps(Decode(%q)) = %q, which does not decode: %v", s, once, err)
		}
		if twice := Dumps(w, -1); twice != once {
			t.Fatalf("round trip changed %q: %q then %q", s, once, twice)
		}
		_ = Repr(v)
	})
}
