package retrieve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/pyjson"
)

// maxPassageLine bounds one line of a passages file.
const maxPassageLine = 16 << 20

// LoadPassagesJSONL reads a passages file (see ReadPassagesJSONL).
func LoadPassagesJSONL(path string) ([]Passage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("retrieve: open passages file: %w", err)
	}
	defer f.Close()
	return ReadPassagesJSONL(f, path)
}

// ReadPassagesJSONL reads one passage per line from r; name is used in
// errors. Each line is a JSON object with "id" (a string, or an integer
// taken as its decimal text) and "text" (a string); its other fields go
// into Meta, with integers as int64 and other numbers as float64. Empty
// lines, malformed JSON, a missing or mistyped id or text, an id used
// twice, and lines over 16 MiB are errors: *example.LineError values that
// read "FILE:LINE: problem".
func ReadPassagesJSONL(r io.Reader, name string) ([]Passage, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxPassageLine)
	var out []Passage
	firstLine := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		p, err := parsePassage(sc.Bytes())
		if err != nil {
			return nil, &example.LineError{File: name, Line: line, Err: err}
		}
		if first, dup := firstLine[p.ID]; dup {
			return nil, &example.LineError{File: name, Line: line, Err: fmt.Errorf("id %q already used on line %d", p.ID, first)}
		}
		firstLine[p.ID] = line
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &example.LineError{File: name, Line: line + 1, Err: fmt.Errorf("line longer than %d bytes", maxPassageLine)}
		}
		return nil, fmt.Errorf("retrieve: read %s: %w", name, err)
	}
	return out, nil
}

// parsePassage reads one line of a passages file.
func parsePassage(b []byte) (Passage, error) {
	if strings.TrimSpace(string(b)) == "" {
		return Passage{}, errors.New("empty line; expected a JSON object")
	}
	v, err := pyjson.Decode(b)
	if err != nil {
		return Passage{}, fmt.Errorf("invalid JSON: %w", err)
	}
	obj, ok := v.(pyjson.Object)
	if !ok {
		return Passage{}, fmt.Errorf("expected a JSON object, got %s", jsonKind(v))
	}
	var p Passage
	var hasID, hasText bool
	for _, m := range obj {
		switch m.Key {
		case "id":
			switch id := m.Value.(type) {
			case string:
				p.ID = id
			case int64:
				p.ID = strconv.FormatInt(id, 10)
			default:
				return Passage{}, fmt.Errorf(`"id" is %s, want a string or an integer`, jsonKind(m.Value))
			}
			hasID = true
		case "text":
			text, ok := m.Value.(string)
			if !ok {
				return Passage{}, fmt.Errorf(`"text" is %s, want a string`, jsonKind(m.Value))
			}
			p.Text = text
			hasText = true
		default:
			if p.Meta == nil {
				p.Meta = make(map[string]any, len(obj))
			}
			p.Meta[m.Key] = pyjson.Plain(m.Value)
		}
	}
	switch {
	case !hasID:
		return Passage{}, errors.New(`missing "id"`)
	case !hasText:
		return Passage{}, fmt.Errorf(`passage %q: missing "text"`, p.ID)
	}
	return p, nil
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case pyjson.Object:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
