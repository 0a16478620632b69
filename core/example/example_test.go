package example

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestExampleInputsAndAccessors(t *testing.T) {
	e := New(map[string]any{"question": "q", "answer": "4", "n": int64(3), "f": 0.5, "ok": true, "tags": []any{"a", 1}})
	e = e.WithInputs("question")
	if got := e.Inputs(); len(got) != 1 || got["question"] != "q" {
		t.Errorf("Inputs = %v", got)
	}
	if got := e.Labels(); len(got) != 5 || got["question"] != nil {
		t.Errorf("Labels = %v", got)
	}
	if n, err := e.Int("answer"); err != nil || n != 4 {
		t.Errorf("Int(answer) = %d, %v", n, err)
	}
	if f, err := e.Float("n"); err != nil || f != 3 {
		t.Errorf("Float(n) = %v, %v", f, err)
	}
	if _, err := e.Int("f"); err == nil {
		t.Error("Int of 0.5 accepted")
	}
	if n, err := e.With("big", 1e300).Int("big"); err == nil {
		t.Errorf("Int of 1e300 = %d, want an error", n)
	}
	if s := e.String("ok"); s != "True" {
		t.Errorf("String(ok) = %q", s)
	}
	if tags, err := e.Strings("tags"); err != nil || strings.Join(tags, ",") != "a,1" {
		t.Errorf("Strings = %v %v", tags, err)
	}
	w := e.With("answer", "5")
	if e.String("answer") != "4" || w.String("answer") != "5" || !w.HasInputs() {
		t.Error("With changed the original or lost the inputs")
	}
	if wo := w.Without("question"); wo.Has("question") || wo.HasInputs() {
		t.Error("Without kept the field or its input mark")
	}
}

func TestReadJSONL(t *testing.T) {
	ex, err := ReadJSONL(strings.NewReader("{\"q\": 1, \"a\": 2.0}\n{\"q\": \"x\"}\n"), "d.jsonl", "q")
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 2 || ex[0].String("a") != "2.0" || ex[1].InputKeys()[0] != "q" {
		t.Errorf("examples = %v", ex)
	}
	for _, c := range []struct{ data, want string }{
		{"{\"q\": 1}\n  \n{\"q\": \n", "d.jsonl:3: "},
		{"[1, 2]\n", "d.jsonl:1: example: expected a JSON object"},
		{"{\"q\": 1} trailing\n", "d.jsonl:1: "},
	} {
		_, err := ReadJSONL(strings.NewReader(c.data), "d.jsonl")
		var le *LineError
		if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("ReadJSONL(%q) error = %v, want prefix %q", c.data, err, c.want)
		}
	}
}

func TestReadJSONLWithSkipsBlankLinesAndNamesLines(t *testing.T) {
	data := "\ufeff{\"q\": 1}\r\n\n   \n{\"q\": 2}\nnot json\n[1]\n\t\n{\"q\": 3}"
	d, err := ReadJSONLWith(strings.NewReader(data), "d.jsonl", JSONLOptions{SkipInvalid: true, InputKeys: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	var qs []string
	for _, e := range d.Examples {
		qs = append(qs, e.String("q"))
	}
	if got := strings.Join(qs, ","); got != "1,2,3" {
		t.Errorf("examples = %s, want 1,2,3", got)
	}
	if got := fmt.Sprint(d.Lines); got != "[1 4 8]" {
		t.Errorf("lines = %s, want [1 4 8]", got)
	}
	if d.Where("d.jsonl", 2) != "d.jsonl:8" {
		t.Errorf("Where(2) = %s", d.Where("d.jsonl", 2))
	}
	if len(d.Skipped) != 2 || d.Skipped[0].Line != 5 || d.Skipped[1].Line != 6 ||
		!strings.HasPrefix(d.Skipped[1].Error(), "d.jsonl:6: example: expected a JSON object") {
		t.Errorf("skipped = %v, want lines 5 and 6", d.Skipped)
	}
	if !d.Examples[0].HasInputs() {
		t.Error("input keys not marked")
	}

	_, err = ReadJSONLWith(strings.NewReader(data), "d.jsonl", JSONLOptions{})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 5 {
		t.Errorf("without SkipInvalid: err = %v, want the error of line 5", err)
	}
}

func TestNextLineBoundsLongLines(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("short\n"+strings.Repeat("x", 100)+"\nok\r\n"+strings.Repeat("y", 11)), 16)
	var got []string
	for {
		line, long, err := nextLine(br, nil, 10)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%v", line, long))
	}
	if want := "short/false,/true,ok/false,/true"; strings.Join(got, ",") != want {
		t.Errorf("lines = %s, want %s", strings.Join(got, ","), want)
	}
}

// FuzzReadJSONL checks the reader against a plain split of the input: every
// line that is not blank is either an example or a skipped line, in order.
func FuzzReadJSONL(f *testing.F) {
	for _, s := range []string{"{\"q\": 1}\n\n{\"q\": 2}", "\ufeff{}\r\n[1]\n", "x\n\n\n", "{\"a\": {\"b\": [1, 2.5, null]}}\n  \t\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		d, err := ReadJSONLWith(strings.NewReader(data), "f", JSONLOptions{SkipInvalid: true})
		if err != nil {
			t.Fatalf("SkipInvalid read failed: %v", err)
		}
		var want []int
		for i, l := range strings.Split(data, "\n") {
			if i == 0 {
				l = strings.TrimPrefix(l, "\ufeff")
			}
			if strings.TrimSpace(l) != "" {
				want = append(want, i+1)
			}
		}
		got := slices.Clone(d.Lines)
		for _, le := range d.Skipped {
			got = append(got, le.Line)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("lines read %v, want every non-blank line %v", got, want)
		}
		if len(d.Examples) != len(d.Lines) {
			t.Fatalf("%d examples, %d lines", len(d.Examples), len(d.Lines))
		}
		strict, err := ReadJSONLWith(strings.NewReader(data), "f", JSONLOptions{})
		if (err == nil) != (len(d.Skipped) == 0) {
			t.Fatalf("strict read error %v with %d skipped lines", err, len(d.Skipped))
		}
		if err == nil && !slices.Equal(strict.Lines, d.Lines) {
			t.Fatalf("strict lines %v, skipping %v", strict.Lines, d.Lines)
		}
	})
}

func TestDecode(t *testing.T) {
	var out struct {
		Answer string `json:"answer"`
		N      int    `json:"n"`
	}
	if err := New(map[string]any{"answer": "x", "n": int64(2)}).Decode(&out); err != nil || out.Answer != "x" || out.N != 2 {
		t.Errorf("Decode = %+v, %v", out, err)
	}
}

// TestKeyOrder checks that examples read from JSON keep their keys, and the
// keys of nested objects, in the file's order, and integers of any size,
// as DSPy's Examples (Python dicts and ints) do.
func TestKeyOrder(t *testing.T) {
	line := `{"zeta": {"b": 1, "a": [{"y": 2, "x": 3}]}, "alpha": 12345678901234567890, "mid": "m"}`
	ex, err := ReadJSONL(strings.NewReader(line+"\n"), "data.jsonl", "zeta")
	if err != nil {
		t.Fatal(err)
	}
	e := ex[0]
	if got := strings.Join(e.Keys(), ","); got != "zeta,alpha,mid" {
		t.Errorf("Keys = %s, want zeta,alpha,mid", got)
	}
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"zeta":{"b":1,"a":[{"y":2,"x":3}]},"alpha":12345678901234567890,"mid":"m"}`; string(b) != want {
		t.Errorf("MarshalJSON = %s\nwant %s", b, want)
	}
	if got := e.String("zeta"); got != `{'b': 1, 'a': [{'y': 2, 'x': 3}]}` {
		t.Errorf("String(zeta) = %s", got)
	}
	if got := e.String("alpha"); got != "12345678901234567890" {
		t.Errorf("String(alpha) = %s", got)
	}
	if f, err := e.Float("alpha"); err != nil || f != 1.2345678901234567e19 {
		t.Errorf("Float(alpha) = %v, %v", f, err)
	}
	if _, err := e.Int("alpha"); err == nil || !strings.Contains(err.Error(), "outside the int64 range") {
		t.Errorf("Int(alpha) error = %v", err)
	}
	if got := strings.Join(e.InputKeys(), ","); got != "zeta" {
		t.Errorf("InputKeys = %s", got)
	}
	// With appends a new key and keeps an old key's place; Without drops.
	e2 := e.With("beta", 1).With("zeta", 2).Without("alpha")
	if got := strings.Join(e2.Keys(), ","); got != "zeta,mid,beta" {
		t.Errorf("Keys after With/Without = %s", got)
	}
	if got := strings.Join(e.Keys(), ","); got != "zeta,alpha,mid" {
		t.Errorf("With changed the original: %s", got)
	}
	// A Go map has no order: New sorts.
	if got := strings.Join(New(map[string]any{"b": 1, "a": 2, "c": 3}).Keys(), ","); got != "a,b,c" {
		t.Errorf("New keys = %s", got)
	}
	// A repeated key keeps its first place and its last value.
	d := FromObject(Object{{Key: "q", Value: 1}, {Key: "a", Value: 2}, {Key: "q", Value: 3}})
	if v, _ := d.Get("q"); strings.Join(d.Keys(), ",") != "q,a" || v != 3 {
		t.Errorf("FromObject with a repeated key: %v %v", d.Keys(), v)
	}
}
