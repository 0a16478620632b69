// Package jsonrepair reads the almost-JSON that language models write:
// markdown code fences, single-quoted strings, bare keys, Python literals
// (True, False, None), trailing or missing commas, comments, and brackets
// left open at the end of a truncated answer.
//
// Values come back in pyjson's model (Object keeps key order; integers are
// int64, or *big.Int beyond int64's range, and other numbers float64), so
// they render as Python would.
package jsonrepair

import (
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dspex/dspex/core/pyjson"
)

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 512

// Parse reads s as a single JSON value, repairing common breakage. It
// reports false when s is not JSON-like at all (plain prose, or a value
// followed by more text).
func Parse(s string) (any, bool) {
	s = stripFences(s)
	p := &parser{s: s}
	p.skip()
	if p.eof() {
		return nil, false
	}
	v, ok := p.value(0)
	if !ok {
		return nil, false
	}
	p.skip()
	if !p.eof() {
		return nil, false
	}
	return v, true
}

// stripFences returns the body of the first markdown code fence in s, or s
// unchanged when there is none.
func stripFences(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "```") {
		return s
	}
	body := t[3:]
	if nl := strings.IndexByte(body, '\n'); nl >= 0 {
		lang := strings.TrimSpace(body[:nl])
		if lang == "" || isWord(lang) {
			body = body[nl+1:]
		}
	}
	if end := strings.LastIndex(body, "```"); end >= 0 {
		body = body[:end]
	}
	return body
}

func isWord(s string) bool {
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

// ExtractObject returns the first balanced {...} in s, skipping braces inside
// strings. An object left open at the end of s is returned to the end.
func ExtractObject(s string) (string, bool) {
	start := strings.IndexByte(s, '{')
	if start < 0 {
		return "", false
	}
	depth := 0
	var quote byte
	for i := start; i < len(s); i++ {
		c := s[i]
		if quote != 0 {
			switch c {
			case '\\':
				i++
			case quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '"':
			quote = c
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return s[start : i+1], true
			}
		}
	}
	return s[start:], true
}

type parser struct {
	s   string
	pos int
}

func (p *parser) eof() bool { return p.pos >= len(p.s) }

func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.pos]
}

// skip passes whitespace and comments.
func (p *parser) skip() {
	for !p.eof() {
		c := p.s[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case c == '/' && strings.HasPrefix(p.s[p.pos:], "//"):
			for !p.eof() && p.s[p.pos] != '\n' {
				p.pos++
			}
		case c == '/' && strings.HasPrefix(p.s[p.pos:], "/*"):
			end := strings.Index(p.s[p.pos+2:], "*/")
			if end < 0 {
				p.pos = len(p.s)
			} else {
				p.pos += end + 4
			}
		default:
			r, n := utf8.DecodeRuneInString(p.s[p.pos:])
			if r == utf8.RuneError || !unicode.IsSpace(r) {
				return
			}
			p.pos += n
		}
	}
}

func (p *parser) value(depth int) (any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	p.skip()
	if p.eof() {
		return nil, false
	}
	c := p.peek()
	switch {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"' || c == '\'':
		return p.str()
	case strings.HasPrefix(p.s[p.pos:], "“"):
		return p.smartStr()
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return p.number()
	}
	word := p.word()
	switch word {
	case "true", "True":
		return true, true
	case "false", "False":
		return false, true
	case "null", "None":
		return nil, true
	case "NaN":
		return math.NaN(), true
	case "Infinity":
		return math.Inf(1), true
	}
	return nil, false
}

func (p *parser) word() string {
	start := p.pos
	for !p.eof() {
		c := p.s[p.pos]
		if c == '_' || c == '$' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			p.pos++
			continue
		}
		break
	}
	return p.s[start:p.pos]
}

func (p *parser) object(depth int) (any, bool) {
	p.pos++ // {
	obj := pyjson.Object{}
	for {
		p.skip()
		if p.eof() {
			return obj, true // truncated: close it
		}
		switch p.peek() {
		case '}':
			p.pos++
			return obj, true
		case ',':
			p.pos++
			continue
		}
		var key string
		switch c := p.peek(); {
		case c == '"' || c == '\'':
			k, ok := p.str()
			if !ok {
				return nil, false
			}
			key = k.(string)
		default:
			key = p.word()
			if key == "" {
				return nil, false
			}
		}
		p.skip()
		if p.eof() {
			return obj, true
		}
		if p.peek() != ':' {
			return nil, false
		}
		p.pos++
		p.skip()
		if p.eof() || p.peek() == '}' || p.peek() == ',' {
			obj = obj.Set(key, nil)
			continue
		}
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		obj = obj.Set(key, v)
	}
}

func (p *parser) array(depth int) (any, bool) {
	p.pos++ // [
	arr := []any{}
	for {
		p.skip()
		if p.eof() {
			return arr, true
		}
		switch p.peek() {
		case ']':
			p.pos++
			return arr, true
		case ',':
			p.pos++
			continue
		}
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		arr = append(arr, v)
	}
}

func (p *parser) str() (any, bool) {
	quote := p.s[p.pos]
	p.pos++
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.pos]
		switch {
		case c == quote:
			p.pos++
			return b.String(), true
		case c == '\\' && p.pos+1 < len(p.s):
			p.pos++
			e := p.s[p.pos]
			p.pos++
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				if p.pos+4 <= len(p.s) {
					if n, err := strconv.ParseUint(p.s[p.pos:p.pos+4], 16, 32); err == nil {
						p.pos += 4
						r := rune(n)
						// A surrogate pair makes one rune; any other
						// surrogate is written as U+FFFD, and the escape
						// after it read on its own.
						if utf16.IsSurrogate(r) && strings.HasPrefix(p.s[p.pos:], `\u`) && p.pos+6 <= len(p.s) {
							if lo, err := strconv.ParseUint(p.s[p.pos+2:p.pos+6], 16, 32); err == nil {
								if pair := utf16.DecodeRune(r, rune(lo)); pair != utf8.RuneError {
									r = pair
									p.pos += 6
								}
							}
						}
						b.WriteRune(r)
						continue
					}
				}
				b.WriteString(`\u`)
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return b.String(), true // unterminated at end of input: close it
}

func (p *parser) smartStr() (any, bool) {
	p.pos += len("“")
	end := strings.Index(p.s[p.pos:], "”")
	if end < 0 {
		s := p.s[p.pos:]
		p.pos = len(p.s)
		return s, true
	}
	s := p.s[p.pos : p.pos+end]
	p.pos += end + len("”")
	return s, true
}

func (p *parser) number() (any, bool) {
	start := p.pos
	if c := p.peek(); c == '-' || c == '+' {
		p.pos++
		if strings.HasPrefix(p.s[p.pos:], "Infinity") {
			p.pos += len("Infinity")
			if p.s[start] == '-' {
				return math.Inf(-1), true
			}
			return math.Inf(1), true
		}
	}
	for !p.eof() {
		c := p.s[p.pos]
		if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '_' ||
			((c == '+' || c == '-') && (p.s[p.pos-1] == 'e' || p.s[p.pos-1] == 'E')) {
			p.pos++
			continue
		}
		break
	}
	text := strings.TrimPrefix(strings.ReplaceAll(p.s[start:p.pos], "_", ""), "+")
	if text == "" || text == "-" {
		return nil, false
	}
	if !strings.ContainsAny(text, ".eE") {
		if i, ok := pyjson.ParseInt(text); ok {
			return i, true
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return nil, false
	}
	return f, true
}
