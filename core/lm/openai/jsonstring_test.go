package openai

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm"
)

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n tab\t \x01 \u2028 é \xff<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encoded to invalid JSON %q: %v", s, out, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q round-trips to %q, encoding/json gives %q", s, back, wantBack)
		}
	})
}

// TestAppendMessagesOneAllocation: the messages' buffer is sized for a
// prompt's escapes (a newline in every ten bytes), so it is allocated once.
func TestAppendMessagesOneAllocation(t *testing.T) {
	line := "[[ ## question ## ]]\nWhat is two plus two?\t\"quoted\"\n"
	msgs := []lm.Message{
		{Role: lm.RoleSystem, Content: strings.Repeat(line, 40)},
		{Role: lm.RoleUser, Content: strings.Repeat(line, 10)},
	}
	obj := []byte(`{"model":"m"}`)
	allocs := testing.AllocsPerRun(100, func() { _ = appendMessages(obj, msgs) })
	if allocs != 1 {
		t.Errorf("appendMessages allocates %.0f times, want 1", allocs)
	}
}
