package pyjson

import (
	"math"
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
