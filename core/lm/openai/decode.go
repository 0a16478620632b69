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
// in any state, when the body needs encoding/json.
func fastDecodeChat(raw []byte, cr *chatResponse) bool {
	// Validating first, with the scanner json.Unmarshal runs too, keeps
	// the reader below simple: it may assume well-formed JSON.
	if !json.Valid(raw) {
		return false
	}
	d := chatDecoder{b: raw}
	return d.top(cr)
}

// chatDecoder walks a body that json.Valid accepted.
type chatDecoder struct {
	b []byte
	i int
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

// peek returns the next byte after white space.
func (d *chatDecoder) peek() byte {
	d.ws()
	return d.b[d.i]
}

// object calls member for each key of the object that starts at d.i, with
// d.i at the key's value; member must consume the value. A key with an
// escape makes object report false, as does member reporting false.
func (d *chatDecoder) object(member func(key []byte) bool) bool {
	d.i++ // '{'
	if d.peek() == '}' {
		d.i++
		return true
	}
	for {
		d.ws()
		start := d.i + 1
		end := bytes.IndexByte(d.b[start:], '"') + start
		key := d.b[start:end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false
		}
		d.i = end + 1
		d.ws()
		d.i++ // ':'
		d.ws()
		if !member(key) {
			return false
		}
		if d.peek() == ',' {
			d.i++
			continue
		}
		d.i++ // '}'
		return true
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

// skip consumes one value.
func (d *chatDecoder) skip() {
	d.ws()
	switch d.b[d.i] {
	case '"':
		d.stringEnd()
	case '{', '[':
		depth := 0
		for {
			switch d.b[d.i] {
			case '"':
				d.stringEnd()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					d.i++
					return
				}
			}
			d.i++
		}
	default: // number, true, false, null
		for d.i < len(d.b) {
			switch d.b[d.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			d.i++
		}
	}
}

// stringEnd moves past the string that starts at d.i and reports whether it
// held a backslash.
func (d *chatDecoder) stringEnd() (escaped bool) {
	d.i++
	for {
		j := bytes.IndexAny(d.b[d.i:], `"\`)
		d.i += j
		if d.b[d.i] == '"' {
			d.i++
			return escaped
		}
		escaped = true
		d.i += 2
	}
}

// null consumes a null and reports whether there was one.
func (d *chatDecoder) null() bool {
	if d.peek() == 'n' {
		d.i += len("null")
		return true
	}
	return false
}

// str decodes a string value into *dst (a null leaves *dst alone, as
// encoding/json does). Another type reports false.
func (d *chatDecoder) str(dst *string) bool {
	if d.null() {
		return true
	}
	if d.b[d.i] != '"' {
		return false
	}
	start := d.i
	escaped := d.stringEnd()
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

// unescape decodes the body of a JSON string with the escapes other than
// \u, which it leaves to encoding/json by reporting false, as it does
// invalid UTF-8.
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
	if d.null() {
		return true
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if (c < '0' || c > '9') && c != '-' {
			break
		}
		d.i++
	}
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	n, err := strconv.Atoi(string(d.b[start:d.i]))
	if err != nil {
		return false
	}
	*dst = n
	return true
}

func (d *chatDecoder) top(cr *chatResponse) bool {
	if d.peek() != '{' {
		return false // null, or a type error for encoding/json to word
	}
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
		d.skip()
		return true
	})
}

func (d *chatDecoder) choices(cr *chatResponse) bool {
	if d.null() {
		return true
	}
	if d.b[d.i] != '[' {
		return false
	}
	d.i++
	if d.peek() == ']' {
		d.i++
		cr.Choices = []chatChoice{}
		return true
	}
	for {
		cr.Choices = append(cr.Choices, chatChoice{})
		if !d.choice(&cr.Choices[len(cr.Choices)-1]) {
			return false
		}
		if d.peek() == ',' {
			d.i++
			continue
		}
		d.i++ // ']'
		return true
	}
}

func (d *chatDecoder) choice(c *chatChoice) bool {
	if d.null() {
		return true
	}
	if d.b[d.i] != '{' {
		return false
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
		d.skip()
		return true
	})
}

func (d *chatDecoder) message(c *chatChoice) bool {
	if d.null() {
		return true
	}
	if d.b[d.i] != '{' {
		return false
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
		d.skip()
		return true
	})
}

func (d *chatDecoder) usage(u *lm.Usage) bool {
	if d.null() {
		return true
	}
	if d.b[d.i] != '{' {
		return false
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
			d.skip()
			return true
		}
		if seen[i] {
			return false
		}
		seen[i] = true
		return d.integer(dst)
	})
}
