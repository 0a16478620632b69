package retrieve

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/example"
)

func TestLoadPassagesJSONL(t *testing.T) {
	t.Parallel()
	got, err := LoadPassagesJSONL(filepath.Join("testdata", "passages.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Passage{
		{ID: "paris", Text: "Paris is the capital of France.", Meta: map[string]any{
			"title": "Paris", "year": int64(2024), "score": 0.5, "tags": []any{"city", "europe"},
			"source": map[string]any{"name": "wiki", "rev": int64(7)}, "draft": false, "note": nil,
		}},
		{ID: "42", Text: "Forty-two is a number."},
		{ID: "", Text: ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("passages (-want +got):\n%s", diff)
	}
}

func TestReadPassagesJSONLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"empty line", `{"id":"a","text":"x"}` + "\n\n" + `{"id":"b","text":"y"}`, "f.jsonl:2: empty line; expected a JSON object"},
		{"blank line", `{"id":"a","text":"x"}` + "\n \t\n", "f.jsonl:2: empty line"},
		{"invalid json", `{"id":"a","text":"x"}` + "\n" + `{"id":"b",`, "f.jsonl:2: invalid JSON"},
		{"trailing data", `{"id":"a","text":"x"} {}`, "f.jsonl:1: invalid JSON"},
		{"array", `["a","x"]`, "f.jsonl:1: expected a JSON object, got an array"},
		{"string", `"a"`, "f.jsonl:1: expected a JSON object, got a string"},
		{"missing id", `{"text":"x"}`, `f.jsonl:1: missing "id"`},
		{"float id", `{"id":1.5,"text":"x"}`, `f.jsonl:1: "id" is a number, want a string or an integer`},
		{"null id", `{"id":null,"text":"x"}`, `f.jsonl:1: "id" is null`},
		{"missing text", `{"id":"a","title":"x"}`, `f.jsonl:1: passage "a": missing "text"`},
		{"text not a string", `{"id":"a","text":["x"]}`, `f.jsonl:1: "text" is an array, want a string`},
		{"duplicate id", `{"id":"a","text":"x"}` + "\n" + `{"id":"b","text":"y"}` + "\n" + `{"id":"a","text":"z"}`, `f.jsonl:3: id "a" already used on line 1`},
		{"duplicate numeric id", `{"id":"7","text":"x"}` + "\n" + `{"id":7,"text":"y"}`, `f.jsonl:2: id "7" already used on line 1`},
		{"too long", `{"id":"a","text":"` + strings.Repeat("x", maxPassageLine) + `"}`, "f.jsonl:1: line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps, err := ReadPassagesJSONL(strings.NewReader(tt.input), "f.jsonl")
			if err == nil {
				t.Fatalf("no error; passages %v", ps)
			}
			var le *example.LineError
			if !errors.As(err, &le) || le.File != "f.jsonl" {
				t.Errorf("err = %v (%T), want an *example.LineError for f.jsonl", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to start with %q", err, tt.want)
			}
		})
	}
}

func TestLoadPassagesJSONLFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := LoadPassagesJSONL(filepath.Join(dir, "missing.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ps, err := LoadPassagesJSONL(empty); err != nil || len(ps) != 0 {
		t.Errorf("empty file = %v, %v", ps, err)
	}
	crlf := filepath.Join(dir, "crlf.jsonl")
	if err := os.WriteFile(crlf, []byte("{\"id\":\"a\",\"text\":\"x\"}\r\n{\"id\":\"b\",\"text\":\"y\"}\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := LoadPassagesJSONL(crlf)
	if err != nil || len(ps) != 2 {
		t.Fatalf("CRLF file = %v, %v", ps, err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"id\":\"a\",\"text\":\"x\"}\n{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPassagesJSONL(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2: ") {
		t.Errorf("err = %v, want it to start with %q", err, bad+":2: ")
	}
}
