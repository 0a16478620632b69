package trace

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzClipJSON checks the row bounds on any JSON, with a small bound n:
// valid JSON stays valid with the same shape, and no string in it is
// longer than n plus the marker.
func FuzzClipJSON(f *testing.F) {
	f.Add(`{"a": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}`, 3)
	f.Add(`[{"role": "user", "content": "héllo wörld, héllo wörld"}]`, 2)
	f.Add(`{"n": 12345678901234567890, "x": [1.5, null, true, "ssssssssssssssssssss"]}`, 1)
	f.Add(`"just a string"`, 4)
	f.Add(`not json`, 1)
	f.Fuzz(func(t *testing.T, in string, n int) {
		n = abs(n) % 64
		out := clipJSONTo([]byte(in), n)
		if !json.Valid([]byte(in)) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("clipJSONTo made invalid JSON of valid %q: %q", in, out)
		}
		var a, b any
		_ = json.Unmarshal([]byte(in), &a)
		_ = json.Unmarshal(out, &b)
		if kind(a) != kind(b) {
			t.Fatalf("clipJSONTo changed the shape: %T to %T", a, b)
		}
		if len(in) > n {
			checkStrings(t, b, n)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	}
	return "other"
}

func checkStrings(t *testing.T, v any, n int) {
	switch x := v.(type) {
	case string:
		if len(x) > n+64 {
			t.Fatalf("a string of %d bytes was kept", len(x))
		}
	case map[string]any:
		for _, e := range x {
			checkStrings(t, e, n)
		}
	case []any:
		for _, e := range x {
			checkStrings(t, e, n)
		}
	}
}

// clipText never splits a rune and always marks what it cut.
func TestClipText(t *testing.T) {
	s := strings.Repeat("é", 10) // 20 bytes
	got := clipText(s, 5)
	if !utf8.ValidString(got) || !strings.HasPrefix(got, "éé…") || !strings.HasSuffix(got, "[dspex: truncated 16 bytes]") {
		t.Errorf("clipText = %q", got)
	}
	if clipText(s, 20) != s {
		t.Error("a string at the bound was cut")
	}
}
