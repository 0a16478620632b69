package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Bounds on what one row stores, so that a flood of large requests or a
// huge LM answer cannot grow the file without limit. A value cut short
// keeps its head followed by a truncation marker (see clipText).
const (
	// MaxTextBytes bounds each string inside a JSON column (a message's
	// content, a completion, an input or output value, a request's path
	// in an event).
	MaxTextBytes = 256 << 10
	// MaxErrorBytes bounds each stored error.
	MaxErrorBytes = 8 << 10
)

// truncatedMarker follows the kept head of a cut value; %d is the number of
// bytes cut.
const truncatedMarker = "… [dspex: truncated %d bytes]"

// clipText returns s, or its first n bytes (cut at a rune boundary) and the
// truncation marker when it is longer.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf(truncatedMarker, len(s)-cut)
}

// clipJSON bounds every string in the JSON text to MaxTextBytes, keeping
// the text's shape (so that readers decode it as before). Text of at most
// MaxTextBytes holds no longer string and is returned as it is.
func clipJSON(text []byte) []byte { return clipJSONTo(text, MaxTextBytes) }

// clipJSONTo is clipJSON with the bound n.
func clipJSONTo(text []byte, n int) []byte {
	if len(text) <= n {
		return text
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return text
	}
	out, err := json.Marshal(clipValue(v, n))
	if err != nil {
		return text
	}
	return out
}

// clipValue clips the strings of a decoded JSON value to n bytes, in
// place.
func clipValue(v any, n int) any {
	switch x := v.(type) {
	case string:
		return clipText(x, n)
	case map[string]any:
		for k, e := range x {
			x[k] = clipValue(e, n)
		}
	case []any:
		for i, e := range x {
			x[i] = clipValue(e, n)
		}
	}
	return v
}
