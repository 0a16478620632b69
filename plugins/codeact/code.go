package codeact

import (
	"regexp"
	"strings"
)

var (
	fencedPython = regexp.MustCompile("(?s)```python[ \n](.*?)[ \n]```?")
	assignLine   = regexp.MustCompile(`^(\w+)\s*=`)
)

// ParseCode extracts the code from an LM's generated_code as DSPy 3.4.1's
// ProgramOfThought._parse_code does (CodeAct inherits it): the text up to
// the first "---" and the first blank double line, the body of the first
// ```python fence when there is one, and, when the last line assigns a
// name, that name once more so that its value is the result. It returns
// the code, and a message when there is nothing to run.
func ParseCode(generated string) (code, problem string) {
	text, _, _ := strings.Cut(generated, "---")
	text, _, _ = strings.Cut(text, "\n\n\n")
	block := text
	if m := fencedPython.FindStringSubmatch(text); m != nil {
		block = m[1]
	}
	if block == "" {
		return text, "Error: Empty code after parsing."
	}
	if !strings.Contains(block, "\n") && strings.Count(block, "=") > 1 {
		return text, "Error: Code format is not correct."
	}
	lines := strings.Split(block, "\n")
	if m := assignLine.FindStringSubmatch(strings.TrimFunc(lines[len(lines)-1], isPySpace)); m != nil {
		block += "\n" + m[1]
	}
	return block, ""
}

// isPySpace is Python's str.strip() whitespace.
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x1f, 0x85:
		return true
	}
	return r > 0x7f && strings.ContainsRune("\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000", r)
}
