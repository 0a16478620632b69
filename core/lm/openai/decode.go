package openai

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dspex/dspex/core/lm"
)

// decodeChat decodes a chat completion body into cr exactly as
// json.Unmarshal(raw, cr) does, and returns json.Unmarshal's error.
//
// Decoding the completion with encoding/json was the largest single cost of
// a call on the client's side (reflection over the response type, a
// decode state, field lookup by name). decodeChat reads the shape every
// server sends by hand and leaves anything unusual to encoding/json: a body
// that is not valid JSON (for encoding/json's own error), an "error"
// member, a key that differs from a field's name only in case or is
// escaped (encoding/json matches those too), a repeated key, a value of
// another type than the field's, an integer that is not a plain int, and a
// string with \u escapes or invalid UTF-8. FuzzDecodeChat checks that the
// two agree.
func decodeChat(raw []byte, cr *chatResponse) error {
	if fastDecodeChat(raw, cr) {
		return nil
	}
	*cr = chatResponse{}
	return json.Unmarshal(raw, cr)
}

// fastDecodeChat is decodeChat's own reader. It reports false, leaving cr
// in any state, when the body needs encoding/json, invalid JSON included:
// it checks the grammar as it reads, and refuses what it cannot vouch
// for.
func fastDecodeChat(raw []byte, cr *chatResponse) bool {
	d := chatDecoder{b: raw}
	if !d.top(cr) {
		return false
	}
	d.ws()
	return d.i == len(d.b)
}

// maxSkipDepth bounds the nesting of the members decodeChat skips; deeper
// ones go to encoding/json, which has its own bound.
const maxSkipDepth = 100

// chatDecoder reads a chat completion body.
type chatDecoder struct {
	b     []byte
	i     int
	depth int // nesting of skipped values
}

func (d *chatDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, and false at the end.
func (d *chatDecoder) peek() (byte, bool) {
	d.ws()
	if d.i >= len(d.b) {
		return 0, false
	}
	return d.b[d.i], true
}

// object calls member for each key of the object at d.i, with d.i at the
// key's value; member must consume the value. A key with an escape makes
// object report false, as does member reporting false or bad JSON.
func (d *chatDecoder) object(member func(key []byte) bool) bool {
	if c, ok := d.peek(); !ok || c != '{' {
		return false
	}
	d.i++
	if c, ok := d.peek(); !ok {
		return false
	} else if c == '}' {
		d.i++
		return true
	}
	for {
		if c, ok := d.peek(); !ok || c != '"' {
			return false
		}
		start := d.i
		escaped, ok := d.stringEnd()
		if !ok || escaped {
			return false
		}
		key := d.b[start+1 : d.i-1]
		if c, ok := d.peek(); !ok || c != ':' {
			return false
		}
		d.i++
		d.ws()
		if !member(key) {
			return false
		}
		c, ok := d.peek()
		if !ok {
			return false
		}
		d.i++
		switch c {
		case ',':
			continue
		case '}':
			return true
		}
		return false
	}
}

// unknown reports whether key names none of names, not even as
// encoding/json compares them (ignoring case, with Unicode folding: a
// non-ASCII key is never taken for unknown).
func unknown(key []byte, names ...string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return false
		}
	}
	return true
}

// skip consumes one value and reports whether it is well-formed.
func (d *chatDecoder) skip() bool {
	c, ok := d.peek()
	if !ok {
		return false
	}
	switch c {
	case '"':
		_, ok := d.stringEnd()
		return ok
	case '{', '[':
		if d.depth++; d.depth > maxSkipDepth {
			return false
		}
		defer func() { d.depth-- }()
		if c == '{' {
			return d.object(func([]byte) bool { return d.skip() })
		}
		d.i++
		if c, ok := d.peek(); !ok {
			return false
		} else if c == ']' {
			d.i++
			return true
		}
		for {
			if !d.skip() {
				return false
			}
			c, ok := d.peek()
			if !ok {
				return false
			}
			d.i++
			switch c {
			case ',':
				continue
			case ']':
				return true
			}
			return false
		}
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	_, ok = d.number()
	return ok
}

// literal consumes lit, which must be next.
func (d *chatDecoder) literal(lit string) bool {
	if !bytes.HasPrefix(d.b[d.i:], []byte(lit)) {
		return false
	}
	d.i += len(lit)
	return true
}

// number consumes a JSON number and reports whether it is an integer
// (no fraction, no exponent) and well-formed.
func (d *chatDecoder) number() (integer, ok bool) {
	b, i := d.b, d.i
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false, false
		}
		integer = false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false, false
		}
		integer = false
	}
	d.i = i
	return integer, true
}

// stringEnd moves past the string that starts at d.i, reporting whether it
// held an escape and whether it is well-formed (closed, no control
// characters, known escapes).
func (d *chatDecoder) stringEnd() (escaped, ok bool) {
	b := d.b
	for i := d.i + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			d.i = i + 1
			return escaped, true
		case c == '\\':
			escaped = true
			i++
			if i >= len(b) {
				return false, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return false, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false, false
					}
				}
				i += 4
			default:
				return false, false
			}
		case c < 0x20:
			return false, false
		}
	}
	return false, false
}

// null consumes a null and reports whether there was one.
func (d *chatDecoder) null() bool {
	if c, ok := d.peek(); ok && c == 'n' {
		return d.literal("null")
	}
	return false
}

// str decodes a string value into *dst (a null leaves *dst alone, as
// encoding/json does). Another type reports false.
func (d *chatDecoder) str(dst *string) bool {
	if c, ok := d.peek(); !ok || c != '"' {
		return d.null()
	}
	start := d.i
	escaped, ok := d.stringEnd()
	if !ok {
		return false
	}
	body := d.b[start+1 : d.i-1]
	if !escaped {
		if !utf8.Valid(body) {
			return false
		}
		*dst = string(body)
		return true
	}
	s, ok := unescape(body)
	*dst = s
	return ok
}

// unescape decodes the body of a well-formed JSON string with the escapes
// other than \u, which it leaves to encoding/json by reporting false, as it
// does invalid UTF-8.
func unescape(body []byte) (string, bool) {
	if !utf8.Valid(body) {
		return "", false
	}
	var out strings.Builder // one allocation: String does not copy
	out.Grow(len(body))
	for {
		j := bytes.IndexByte(body, '\\')
		if j < 0 {
			out.Write(body)
			return out.String(), true
		}
		out.Write(body[:j])
		var c byte
		switch body[j+1] {
		case '"', '\\', '/':
			c = body[j+1]
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		default: // 'u'
			return "", false
		}
		out.WriteByte(c)
		body = body[j+2:]
	}
}

// integer decodes a plain integer into *dst (null leaves it alone);
// anything encoding/json would refuse or read otherwise reports false.
func (d *chatDecoder) integer(dst *int) bool {
	if c, ok := d.peek(); !ok || (c != '-' && (c < '0' || c > '9')) {
		return d.null()
	}
	start := d.i
	integer, ok := d.number()
	if !ok || !integer {
		return false
	}
	n, err := strconv.Atoi(string(d.b[start:d.i]))
	if err != nil {
		return false
	}
	*dst = n
	return true
}

func (d *chatDecoder) top(cr *chatResponse) bool {
	// A body that is not an object (null, or a type error for
	// encoding/json to word) fails in object.
	var seen [4]bool
	once := func(i int) bool {
		if seen[i] {
			return false
		}
		seen[i] = true
		return true
	}
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "id":
			return once(0) && d.str(&cr.ID)
		case "model":
			return once(1) && d.str(&cr.Model)
		case "choices":
			return once(2) && d.choices(cr)
		case "usage":
			return once(3) && d.usage(&cr.Usage)
		}
		if !unknown(key, "id", "model", "choices", "usage", "error") {
			return false
		}
		return d.skip()
	})
}

func (d *chatDecoder) choices(cr *chatResponse) bool {
	if d.null() {
		return true
	}
	if c, ok := d.peek(); !ok || c != '[' {
		return false
	}
	d.i++
	if c, ok := d.peek(); !ok {
		return false
	} else if c == ']' {
		d.i++
		cr.Choices = []chatChoice{}
		return true
	}
	for {
		cr.Choices = append(cr.Choices, chatChoice{})
		if !d.choice(&cr.Choices[len(cr.Choices)-1]) {
			return false
		}
		c, ok := d.peek()
		if !ok {
			return false
		}
		d.i++
		switch c {
		case ',':
			continue
		case ']':
			return true
		}
		return false
	}
}

func (d *chatDecoder) choice(c *chatChoice) bool {
	if d.null() {
		return true
	}
	var seen [3]bool
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "index":
			if seen[0] {
				return false
			}
			seen[0] = true
			return d.integer(&c.Index)
		case "message":
			if seen[1] {
				return false
			}
			seen[1] = true
			return d.message(c)
		case "finish_reason":
			if seen[2] {
				return false
			}
			seen[2] = true
			return d.str(&c.FinishReason)
		}
		if !unknown(key, "index", "message", "finish_reason") {
			return false
		}
		return d.skip()
	})
}

func (d *chatDecoder) message(c *chatChoice) bool {
	if d.null() {
		return true
	}
	seen := false
	return d.object(func(key []byte) bool {
		if string(key) == "content" {
			if seen {
				return false
			}
			seen = true
			if d.null() {
				c.Message.Content = nil
				return true
			}
			s := new(string)
			c.Message.Content = s
			return d.str(s)
		}
		if !unknown(key, "content") {
			return false
		}
		return d.skip()
	})
}

func (d *chatDecoder) usage(u *lm.Usage) bool {
	if d.null() {
		return true
	}
	var seen [3]bool
	return d.object(func(key []byte) bool {
		var dst *int
		var i int
		switch string(key) {
		case "prompt_tokens":
			dst, i = &u.PromptTokens, 0
		case "completion_tokens":
			dst, i = &u.CompletionTokens, 1
		case "total_tokens":
			dst, i = &u.TotalTokens, 2
		default:
			if !unknown(key, "prompt_tokens", "completion_tokens", "total_tokens") {
				return false
			}
			return d.skip()
		}
		if seen[i] {
			return false
		}
		seen[i] = true
		return d.integer(dst)
	})
}
