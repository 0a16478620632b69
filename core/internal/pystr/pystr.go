// Package pystr implements the few Python string operations whose exact
// results reach DSPy's prompts: str.isspace, str.strip, str.splitlines,
// str.expandtabs, inspect.cleandoc (which DSPy applies to every
// signature's instructions) and textwrap.dedent (which its adapters apply
// before indenting the instructions).
//
// Python strings are sequences of code points; these functions count and
// slice by code point too. Bytes that are not valid UTF-8 each count as one
// code point that is not whitespace, and are kept as they are.
package pystr

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// IsSpace is Python's str.isspace for one code point: characters of
// Unicode category Zs or bidirectional class WS, B or S. It differs from
// unicode.IsSpace only in also taking the information separators U+001C to
// U+001F.
func IsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// Strip is Python's str.strip() with no argument.
func Strip(s string) string { return strings.TrimFunc(s, IsSpace) }

// LStrip is Python's str.lstrip() with no argument.
func LStrip(s string) string { return strings.TrimLeftFunc(s, IsSpace) }

// SplitLines is Python's str.splitlines(): lines end at \n, \r, \r\n, \v,
// \f, U+001C, U+001D, U+001E, U+0085, U+2028 and U+2029, and the line
// ends are dropped. An empty string has no lines.
func SplitLines(s string) []string {
	var lines []string
	start := 0
	for i := 0; i < len(s); {
		r, n := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		switch r {
		case '\n', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			lines = append(lines, s[start:i])
			start = i + n
		case '\r':
			lines = append(lines, s[start:i])
			if i+1 < len(s) && s[i+1] == '\n' {
				n = 2
			}
			start = i + n
		}
		i += n
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

// ExpandTabs is Python's str.expandtabs() with tab size 8: the column
// counts code points and restarts after \n and \r only.
func ExpandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for i := 0; i < len(s); {
		_, n := utf8.DecodeRuneInString(s[i:])
		switch s[i] {
		case '\t':
			pad := 8 - col%8
			b.WriteString(strings.Repeat(" ", pad))
			col += pad
		case '\n', '\r':
			b.WriteByte(s[i])
			col = 0
		default:
			b.WriteString(s[i : i+n])
			col++
		}
		i += n
	}
	return b.String()
}

// Cleandoc is Python's inspect.cleandoc: tabs expanded; the first line's
// leading whitespace removed; the indentation common to the other lines
// that are not blank removed from all of them (as many code points, of any
// whitespace); then empty lines at both ends dropped. Lines are split at
// \n only, and "blank" and "empty" differ as in Python: a line of spaces
// left after the margin is cut stays.
func Cleandoc(doc string) string {
	lines := strings.Split(ExpandTabs(doc), "\n")
	margin := -1
	for _, line := range lines[1:] {
		content := utf8.RuneCountInString(LStrip(line))
		if content == 0 {
			continue
		}
		if indent := utf8.RuneCountInString(line) - content; margin < 0 || indent < margin {
			margin = indent
		}
	}
	lines[0] = LStrip(lines[0])
	if margin >= 0 {
		for i := 1; i < len(lines); i++ {
			lines[i] = dropRunes(lines[i], margin)
		}
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	return strings.Join(lines, "\n")
}

// dropRunes is Python's s[n:] for n >= 0.
func dropRunes(s string, n int) string {
	for i := 0; i < len(s); {
		if n == 0 {
			return s[i:]
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n--
	}
	return ""
}

// Dedent is Python's textwrap.dedent: lines (split at \n) made only of
// spaces and tabs are emptied, then the longest run of spaces and tabs
// that begins every other line is removed from the start of every line.
// Other whitespace (U+3000, say) is text to it.
func Dedent(text string) string {
	lines := strings.Split(text, "\n")
	margin, first := "", true
	for i, line := range lines {
		indent := leadingBlanks(line)
		if len(indent) == len(line) {
			lines[i] = "" // whitespace only (or already empty)
			continue
		}
		if first {
			margin, first = indent, false
			continue
		}
		margin = commonPrefix(margin, indent)
	}
	if margin != "" {
		for i, line := range lines {
			lines[i] = strings.TrimPrefix(line, margin)
		}
	}
	return strings.Join(lines, "\n")
}

// leadingBlanks is the run of spaces and tabs that starts line.
func leadingBlanks(line string) string {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return line[:i]
}

func commonPrefix(a, b string) string {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return a[:i]
		}
	}
	return a[:n]
}
