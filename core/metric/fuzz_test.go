package metric

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzTokens checks the two tokenizations the text metrics use: tokens are
// never empty and hold no space, a text's F1 with itself is 1 unless it has
// no tokens, and a text always contains itself.
func FuzzTokens(f *testing.F) {
	for _, s := range []string{"", "The Eiffel Tower!", "a an the", "café-bar", "x_y z", "1,000", "\u00c5ngstr\u00f6m", "\xff\xfe", "\u200b\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks := normalizedTokens(s)
		for _, tok := range toks {
			if tok == "" || strings.Contains(tok, " ") {
				t.Fatalf("normalizedTokens(%q) has token %q", s, tok)
			}
		}
		f1 := tokenF1(toks, toks)
		if (len(toks) > 0 && f1 != 1) || (len(toks) == 0 && f1 != 0) {
			t.Fatalf("F1(%q, itself) = %v", s, f1)
		}
		dpr := dprTokens(s)
		for _, tok := range dpr {
			if tok == "" || (utf8.ValidString(s) && strings.TrimSpace(tok) != tok) {
				t.Fatalf("dprTokens(%q) has token %q", s, tok)
			}
		}
		if passageMatch([]string{s}, []string{s}) != 1 {
			t.Fatalf("%q does not contain itself", s)
		}
	})
}
