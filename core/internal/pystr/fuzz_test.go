package pystr

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCleandoc feeds arbitrary text (invalid UTF-8 included) through the
// instruction pipeline: nothing may panic, and what comes out holds only
// bytes that went in.
func FuzzCleandoc(f *testing.F) {
	for _, s := range []string{"", " \n\t", "a\n  b\n   \n  c", "\u3000x\n\u3000y", "\xff\t\xfe\n  \x80", "a\r\n\tb\x1c c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Cleandoc(s)
		d := Dedent(c)
		lines := SplitLines(d)
		if utf8.ValidString(s) && !utf8.ValidString(c+d+strings.Join(lines, "")) {
			t.Fatalf("valid input %q gave invalid UTF-8", s)
		}
		if len(Dedent(s)) > len(s) || len(Strip(s)) > len(s) {
			t.Fatalf("output longer than input %q", s)
		}
		for _, l := range lines {
			if strings.ContainsAny(l, "\n\r\v\f\x1c\x1d\x1e\u0085\u2028\u2029") {
				t.Fatalf("line %q of %q holds a line break", l, s)
			}
		}
	})
}
