package adapter

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/dspex/dspex/core/internal/pystr"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// FieldChunk is new text of one output field, as the LM streams it.
type FieldChunk struct {
	Field string
	Text  string
}

// Stream is Call for streaming: it streams the completion from model (when
// it can stream) and hands emit each output field's text as it arrives —
// for ChatAdapter between "[[ ## field ## ]]" markers, for JSONAdapter from
// the JSON object's string values as they are written (other values whole,
// once complete). The text emit receives for a str field adds up to the
// parsed value. It then parses the whole completion, like Call (falling back
// from ChatAdapter to JSONAdapter, without streaming, on a parse error).
// A cached response is not streamed: emit is not called and the result
// comes at once. emit returning false stops the stream: Stream then returns
// ErrStopped.
func Stream(ctx context.Context, a Adapter, model lm.LM, r Request, emit func(FieldChunk) bool) (*Result, error) {
	req, err := lmRequest(a, model, r)
	if err != nil {
		return nil, err
	}

	var split splitter
	switch a.(type) {
	case *ChatAdapter:
		split = newChatSplitter(r.Signature)
	case JSONAdapter:
		split = newJSONSplitter(r.Signature)
	}
	resp, stats, err := tracedStream(ctx, a.Name(), model, req, func(d lm.Delta) bool {
		if d.Index != 0 || d.Cached || split == nil {
			return true
		}
		for _, c := range split.feed(d.Text) {
			if !emit(c) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	res, err := parseAll(ctx, a, r.Signature, req, resp, stats.Cost)
	if err == nil {
		return res, nil
	}
	return fallback(ctx, a, model, r, res, err)
}

// ErrStopped is returned by Stream when emit asked it to stop.
var ErrStopped = errors.New("adapter: stream stopped by its consumer")

// tracedStream streams req inside an LM span, calling onDelta for each
// delta, and collects the whole response.
func tracedStream(ctx context.Context, adapterName string, model lm.LM, req *lm.Request, onDelta func(lm.Delta) bool) (*lm.Response, lm.CallStats, error) {
	stopped := false
	run := func(ctx context.Context) (*lm.Response, error) {
		var collected []lm.Delta
		cached := false
		for d, err := range lm.StreamOrComplete(ctx, model, req) {
			if err != nil {
				return nil, err
			}
			cached = cached || d.Cached
			collected = append(collected, d)
			if !onDelta(d) {
				stopped = true
				break
			}
		}
		if stopped {
			return nil, ErrStopped
		}
		res, err := lm.Collect(func(yield func(lm.Delta, error) bool) {
			for _, d := range collected {
				if !yield(d, nil) {
					return
				}
			}
		})
		if err != nil {
			return nil, err
		}
		res.CacheHit = cached
		return res, nil
	}
	return tracedCall(ctx, adapterName, model, req, run)
}

// splitter turns streamed completion text into field chunks.
type splitter interface {
	feed(text string) []FieldChunk
}

// chatSplitter follows "[[ ## field ## ]]" markers across deltas. A marker
// counts only at the start of a line, so an unfinished line that could
// still become a marker is held back until it is complete or clearly is
// not one. Leading whitespace of a field is skipped and trailing whitespace
// held until more text follows, so a str field's chunks add up to the
// stripped value the parser returns.
type chatSplitter struct {
	sig         *signature.Signature
	partial     string // text of the current line not yet processed
	emittedLine bool   // part of the current line was already emitted as content
	field       string // the section being read; "" before the first marker
	active      bool   // the section is an output field seen for the first time
	started     bool   // non-space text of the section was emitted
	pendingWS   string
	seen        map[string]bool
}

func newChatSplitter(sig *signature.Signature) *chatSplitter {
	return &chatSplitter{sig: sig, seen: map[string]bool{}}
}

func (c *chatSplitter) feed(text string) []FieldChunk {
	var out []FieldChunk
	c.partial += text
	for {
		i := strings.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		line := c.partial[:i]
		c.partial = c.partial[i+1:]
		if !c.emittedLine {
			if name, rest, ok := fieldHeader(pystr.Strip(line)); ok {
				c.enter(name)
				out = c.content(out, rest)
				continue
			}
		}
		out = c.content(out, line+"\n")
		c.emittedLine = false
	}
	if c.partial == "" || c.emittedLine {
		if c.partial != "" {
			out = c.content(out, c.partial)
			c.partial = ""
		}
		return out
	}
	if s := pystr.Strip(c.partial); s == "" || strings.HasPrefix(s, "[") {
		return out // might still be a marker: wait for the rest of the line
	}
	out = c.content(out, c.partial)
	c.partial = ""
	c.emittedLine = true
	return out
}

func (c *chatSplitter) enter(name string) {
	c.field, c.started, c.pendingWS = name, false, ""
	c.active = c.sig.IsOutput(name) && !c.seen[name]
	c.seen[name] = true
}

func (c *chatSplitter) content(out []FieldChunk, s string) []FieldChunk {
	if !c.active || s == "" {
		return out
	}
	if !c.started {
		s = strings.TrimLeftFunc(s, pystr.IsSpace)
		if s == "" {
			return out
		}
		c.started = true
	}
	body := strings.TrimRightFunc(s, pystr.IsSpace)
	if body == "" {
		c.pendingWS += s
		return out
	}
	out = append(out, FieldChunk{Field: c.field, Text: c.pendingWS + body})
	c.pendingWS = s[len(body):]
	return out
}

// jsonSplitter reads a streamed JSON object incrementally: the decoded text
// of each output field's string value is emitted as it arrives; any other
// value is emitted whole, as JSON text, once it is complete.
type jsonSplitter struct {
	sig   *signature.Signature
	state jsonState
	key   strings.Builder
	cur   string // the key whose value is being read
	raw   strings.Builder
	depth int
	inStr bool // inside a string within a raw value
	esc   string
}

type jsonState uint8

const (
	jBefore jsonState = iota
	jKeyWait
	jKey
	jColon
	jValueWait
	jString
	jRaw
	jAfterValue
	jDone
)

func newJSONSplitter(sig *signature.Signature) *jsonSplitter { return &jsonSplitter{sig: sig} }

func (j *jsonSplitter) feed(text string) []FieldChunk {
	var out []FieldChunk
	var str strings.Builder
	flush := func() {
		if str.Len() > 0 {
			if j.sig.IsOutput(j.cur) {
				out = append(out, FieldChunk{Field: j.cur, Text: str.String()})
			}
			str.Reset()
		}
	}
	for _, r := range text {
		switch j.state {
		case jBefore:
			if r == '{' {
				j.state = jKeyWait
			}
		case jKeyWait:
			switch r {
			case '"':
				j.key.Reset()
				j.state = jKey
			case '}':
				j.state = jDone
			}
		case jKey:
			if j.esc != "" || r == '\\' {
				j.esc += string(r)
				if s, ok := unescape(j.esc); ok {
					j.key.WriteString(s)
					j.esc = ""
				}
				continue
			}
			if r == '"' {
				j.cur = j.key.String()
				j.state = jColon
				continue
			}
			j.key.WriteRune(r)
		case jColon:
			if r == ':' {
				j.state = jValueWait
			}
		case jValueWait:
			switch {
			case r == '"':
				j.state = jString
			case r == ' ' || r == '\n' || r == '\t' || r == '\r':
			default:
				j.raw.Reset()
				j.depth, j.inStr = 0, false
				j.state = jRaw
				j.rawRune(r, &out)
			}
		case jString:
			if j.esc != "" || r == '\\' {
				j.esc += string(r)
				if s, ok := unescape(j.esc); ok {
					str.WriteString(s)
					j.esc = ""
				}
				continue
			}
			if r == '"' {
				flush()
				j.state = jAfterValue
				continue
			}
			str.WriteRune(r)
		case jRaw:
			j.rawRune(r, &out)
		case jAfterValue:
			switch r {
			case ',':
				j.state = jKeyWait
			case '}':
				j.state = jDone
			}
		}
	}
	flush()
	return out
}

// rawRune adds r to a non-string value; at the value's end it is emitted.
func (j *jsonSplitter) rawRune(r rune, out *[]FieldChunk) {
	if j.inStr {
		j.raw.WriteRune(r)
		switch {
		case j.esc != "":
			j.esc = ""
		case r == '\\':
			j.esc = "\\"
		case r == '"':
			j.inStr = false
		}
		return
	}
	switch r {
	case '"':
		j.inStr = true
	case '[', '{':
		j.depth++
	case ']', '}':
		if j.depth == 0 {
			j.endRaw(out)
			j.state = jDone
			return
		}
		j.depth--
	case ',':
		if j.depth == 0 {
			j.endRaw(out)
			j.state = jKeyWait
			return
		}
	}
	j.raw.WriteRune(r)
}

func (j *jsonSplitter) endRaw(out *[]FieldChunk) {
	if v := strings.TrimSpace(j.raw.String()); v != "" && j.sig.IsOutput(j.cur) {
		*out = append(*out, FieldChunk{Field: j.cur, Text: v})
	}
}

// unescape decodes a JSON escape sequence once it is complete.
func unescape(seq string) (string, bool) {
	if len(seq) < 2 {
		return "", false
	}
	switch seq[1] {
	case 'n':
		return "\n", true
	case 't':
		return "\t", true
	case 'r':
		return "\r", true
	case 'b':
		return "\b", true
	case 'f':
		return "\f", true
	case 'u':
		if len(seq) < 6 {
			return "", false
		}
		n, err := strconv.ParseUint(seq[2:6], 16, 32)
		if err != nil {
			return seq, true
		}
		r := rune(n)
		if 0xD800 <= r && r < 0xDC00 { // a high surrogate: its pair follows
			switch {
			case len(seq) >= 7 && seq[6] != '\\', len(seq) >= 8 && seq[7] != 'u':
				return "\ufffd" + seq[6:], true // no pair: keep what followed
			case len(seq) < 12:
				return "", false
			}
			lo, err := strconv.ParseUint(seq[8:12], 16, 32)
			if err != nil {
				return "\ufffd", true
			}
			if r = utf16.DecodeRune(r, rune(lo)); r == utf8.RuneError {
				// Not a low surrogate: the high one is lost, the second
				// escape stands alone (U+FFFD if it is a surrogate too).
				return "\ufffd" + string(rune(lo)), true
			}
		}
		if !utf8.ValidRune(r) {
			r = utf8.RuneError
		}
		return string(r), true
	default:
		return seq[1:2], true
	}
}
