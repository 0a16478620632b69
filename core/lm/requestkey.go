package lm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// requestKeyVersion is the "v" of a request's canonical form.
const requestKeyVersion = 1

// canonicalRequest is the canonical form RequestKey hashes, as
// encoding/json writes it. Cache entries written by earlier versions are
// keyed by these bytes, so appendCanonical must reproduce them exactly.
type canonicalRequest struct {
	V              int             `json:"v"`
	Model          string          `json:"model"`
	Messages       [][2]string     `json:"messages"`
	Params         Params          `json:"params"`
	ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
	RolloutID      string          `json:"rollout_id,omitempty"`
}

// canonicalJSON is the canonical form as encoding/json writes it: the
// definition appendCanonical follows, and its fallback.
func canonicalJSON(model string, req *Request) ([]byte, error) {
	canon := canonicalRequest{V: requestKeyVersion, Model: model, Params: req.Params,
		ResponseFormat: req.ResponseFormat, RolloutID: req.RolloutID}
	canon.Messages = make([][2]string, len(req.Messages))
	for i, m := range req.Messages {
		canon.Messages[i] = [2]string{m.Role, m.Content}
	}
	return json.Marshal(canon)
}

// canonical returns the canonical form of a request: the bytes
// canonicalJSON gives, written without reflection (a third of the time,
// and no copy of the messages), or by canonicalJSON itself for what it
// does not write (Params.Extra, non-finite floats).
func canonical(model string, req *Request) ([]byte, error) {
	if b, ok := appendCanonical(nil, model, req); ok {
		return b, nil
	}
	return canonicalJSON(model, req)
}

// appendCanonical appends the canonical form to dst; false means it is left
// to canonicalJSON.
func appendCanonical(dst []byte, model string, req *Request) ([]byte, bool) {
	p := &req.Params
	if len(p.Extra) > 0 {
		return nil, false
	}
	size := 64 + len(model) + len(req.RolloutID)
	for _, m := range req.Messages {
		size += len(m.Role) + len(m.Content) + len(m.Content)/8 + 8
	}
	if rf := req.ResponseFormat; rf != nil {
		size += len(rf.Schema) + len(rf.Name) + 64
	}
	b := dst
	if b == nil {
		b = make([]byte, 0, size)
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, requestKeyVersion, 10)
	b = append(b, `,"model":`...)
	b = AppendJSONString(b, model, true)
	b = append(b, `,"messages":[`...)
	for i, m := range req.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = AppendJSONString(b, m.Role, true)
		b = append(b, ',')
		b = AppendJSONString(b, m.Content, true)
		b = append(b, ']')
	}
	b = append(b, `],"params":{`...)
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
	}
	ok := true
	if p.Temperature != nil {
		field("temperature")
		b, ok = appendFloat(b, *p.Temperature)
	}
	if p.MaxTokens != nil {
		field("max_tokens")
		b = strconv.AppendInt(b, int64(*p.MaxTokens), 10)
	}
	if p.TopP != nil && ok {
		field("top_p")
		b, ok = appendFloat(b, *p.TopP)
	}
	if p.N != nil {
		field("n")
		b = strconv.AppendInt(b, int64(*p.N), 10)
	}
	if len(p.Stop) > 0 {
		field("stop")
		b = append(b, '[')
		for i, s := range p.Stop {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, s, true)
		}
		b = append(b, ']')
	}
	if p.Seed != nil {
		field("seed")
		b = strconv.AppendInt(b, *p.Seed, 10)
	}
	if !ok {
		return nil, false
	}
	b = append(b, '}')
	if rf := req.ResponseFormat; rf != nil {
		// Rare, and its schema is compacted and HTML-escaped by
		// encoding/json: it writes this part itself.
		enc, err := json.Marshal(rf)
		if err != nil {
			return nil, false
		}
		b = append(b, `,"response_format":`...)
		b = append(b, enc...)
	}
	if req.RolloutID != "" {
		b = append(b, `,"rollout_id":`...)
		b = AppendJSONString(b, req.RolloutID, true)
	}
	return append(b, '}'), true
}

// appendFloat writes f as encoding/json does; a NaN or infinity, which it
// refuses, reports false.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// "1e-07" → "1e-7", as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// AppendJSONString appends s as a JSON string, byte for byte as
// encoding/json writes it with SetEscapeHTML(escapeHTML): short escapes for
// quote, backslash, \b, \f, \n, \r and \t, \u00XX for other control
// characters (and for <, > and & when escapeHTML), \u2028 and \u2029
// escaped, and invalid UTF-8 as \ufffd. The cache key and the providers'
// request bodies are written with it.
func AppendJSONString(dst []byte, s string, escapeHTML bool) []byte {
	safe := &jsonSafe
	if escapeHTML {
		safe = &htmlSafe
	}
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// htmlSafe and jsonSafe mark the ASCII bytes encoding/json writes as they
// are, with and without HTML escaping.
var htmlSafe, jsonSafe = func() (html, plain [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\'
		html[c] = plain[c] && c != '<' && c != '>' && c != '&'
	}
	return html, plain
}()

// requestKey hashes a canonical form.
func requestKey(b []byte) string {
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}
