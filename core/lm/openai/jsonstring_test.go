package openai

import (
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm"
)

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
