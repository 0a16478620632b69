// The race detector's instrumentation allocates on its own (9 here), so the
// budget holds without it.

//go:build !race

package adapter

import (
	"testing"

	"github.com/dspex/dspex/core/signature"
)

// ChatAdapter.Parse's own allocations stay within a budget: the lines, the
// output map and what each field's text becomes. Sections are kept as
// ranges of the lines, not copies; it was 14 before.
func TestChatParseAllocations(t *testing.T) {
	sig := signature.MustParse("question -> reasoning, answer: int")
	completion := "[[ ## reasoning ## ]]\nTwo plus two\nis four.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"
	a := &ChatAdapter{}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Parse(sig, completion); err != nil {
			t.Fatal(err)
		}
	})
	const budget = 7
	t.Logf("%.0f allocations per parse", allocs)
	if allocs > budget {
		t.Errorf("%.0f allocations per parse, budget %d", allocs, budget)
	}
}
