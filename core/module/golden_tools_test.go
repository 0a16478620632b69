package module_test

// The DSPy ReAct golden and the Go twins of its Python tools, shared by the
// ReAct tests (core/tool's tests keep their own copy).

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/dspex/dspex/core/tool"
)

// dspyGolden is testdata/golden/react/dspy_react.json, written by DSPy 3.4.1
// (see gen_golden.py there).
type dspyGolden struct {
	DSPyVersion string            `json:"dspy_version"`
	Tools       map[string]string `json:"tools"`
	State       map[string]struct {
		Instructions string `json:"instructions"`
		Fields       []struct {
			Prefix      string `json:"prefix"`
			Description string `json:"description"`
		} `json:"fields"`
	} `json:"state"`
	Requests [][]struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"requests"`
	Trajectory map[string]any `json:"trajectory"`
	Answer     string         `json:"answer"`
	Confidence float64        `json:"confidence"`
}

func loadDSPyGolden(t *testing.T) *dspyGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", "react", "dspy_react.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g dspyGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// The Go twins of the Python tools in gen_golden.py.

type SearchArgs struct {
	Query string `json:"query"`
}

type LookupArgs struct {
	Title   string  `json:"title" desc:"the page's title"`
	Limit   int     `json:"limit"`
	Section *string `json:"section"`
}

type LookupResult struct {
	Title   string  `json:"title"`
	Text    string  `json:"text"`
	Section *string `json:"section"`
}

type SinkLeaf struct {
	V float64 `json:"v"`
}

type SinkFilter struct {
	Year      int        `json:"year" desc:"publication year"`
	Lang      string     `json:"lang" literal:"en,de"`
	Note      *string    `json:"note"`
	SinkLeaf  SinkLeaf   `json:"leaf" desc:"dropped by DSPy's $ref resolution"`
	MaybeLeaf *SinkLeaf  `json:"maybe_leaf"`
	Leaves    []SinkLeaf `json:"leaves"`
}

type SinkArgs struct {
	A int            `json:"a"`
	B float64        `json:"b"`
	C bool           `json:"c"`
	D []string       `json:"d" desc:"some strings"`
	E map[string]int `json:"e"`
	G any            `json:"g"`
	H SinkFilter     `json:"h"`
	J map[string]any `json:"j"`
	K string         `json:"k" literal:"x"`
	M []any          `json:"m"`
	F *int           `json:"f"`
	O *SinkFilter    `json:"o" desc:"an optional filter"`
}

func searchWikipedia(context.Context, SearchArgs) (any, error) {
	return []string{
		"Go | Go is a programming language designed at Google.",
		"Gopher | A small burrowing rodent.",
	}, nil
}

func lookup(_ context.Context, a LookupArgs) (any, error) {
	text := "Go was designed at Google by Griesemer, Pike and Thompson."
	if a.Limit < len(text) {
		text = text[:a.Limit]
	}
	return LookupResult{Title: a.Title, Text: text, Section: a.Section}, nil
}

func mustTool[A any](t testing.TB, name, desc string, fn func(context.Context, A) (any, error)) *tool.Tool {
	t.Helper()
	tl, err := tool.New(name, desc, fn)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func goldenTools(t testing.TB) map[string]*tool.Tool {
	return map[string]*tool.Tool{
		"search_wikipedia": mustTool(t, "search_wikipedia", "Search Wikipedia for abstracts.\n\n    Returns the top results.", searchWikipedia),
		"lookup":           mustTool(t, "lookup", "", lookup),
		"kitchen_sink": mustTool(t, "kitchen_sink", "Takes \"everything\".\nTabs\tand\\backslashes.",
			func(context.Context, SinkArgs) (any, error) { return "", nil }),
	}
}
