// Package tooltest holds the Go twins of the Python tools with which
// DSPy 3.4.1 wrote the ReAct golden (core/module/testdata/golden/react), for
// the tests of core/tool and core/module.
package tooltest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/dspex/dspex/core/tool"
)

// DSPyGolden is core/module/testdata/golden/react/dspy_react.json, written by DSPy 3.4.1
// (see gen_golden.py there).
type DSPyGolden struct {
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

// LoadDSPyGolden reads the golden written by DSPy.
func LoadDSPyGolden(t testing.TB) *DSPyGolden {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "module", "testdata", "golden", "react", "dspy_react.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g DSPyGolden
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

// MustTool builds a tool with tool.New, failing the test on an error.
func MustTool[A any](t testing.TB, name, desc string, fn func(context.Context, A) (any, error)) *tool.Tool {
	t.Helper()
	tl, err := tool.New(name, desc, fn)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// GoldenTools returns the Go twins of the Python tools of gen_golden.py,
// by name.
func GoldenTools(t testing.TB) map[string]*tool.Tool {
	return map[string]*tool.Tool{
		"search_wikipedia": MustTool(t, "search_wikipedia", "Search Wikipedia for abstracts.\n\n    Returns the top results.", searchWikipedia),
		"lookup":           MustTool(t, "lookup", "", lookup),
		"kitchen_sink": MustTool(t, "kitchen_sink", "Takes \"everything\".\nTabs\tand\\backslashes.",
			func(context.Context, SinkArgs) (any, error) { return "", nil }),
	}
}
