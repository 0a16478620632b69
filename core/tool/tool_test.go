package tool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/tool"
	"github.com/dspex/dspex/core/tool/tooltest"
)

func TestToolDescriptionMatchesDSPy(t *testing.T) {
	g := tooltest.LoadDSPyGolden(t)
	tools := tooltest.GoldenTools(t)
	if len(g.Tools) != len(tools) {
		t.Fatalf("golden has %d tools, test %d", len(g.Tools), len(tools))
	}
	for name, want := range g.Tools {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(want, tools[name].String()); diff != "" {
				t.Errorf("tool description differs from DSPy's (-dspy +go):\n%s", diff)
			}
		})
	}
}

func TestToolSchemaAccessors(t *testing.T) {
	tl := tooltest.GoldenTools(t)["lookup"]
	if tl.Name() != "lookup" || tl.Desc() != "" || tl.ArgType().Name != "LookupArgs" {
		t.Errorf("name %q desc %q type %q", tl.Name(), tl.Desc(), tl.ArgType().Name)
	}
	wantArgs := map[string]any{
		"title":   map[string]any{"type": "string", "description": "the page's title"},
		"limit":   map[string]any{"type": "integer"},
		"section": map[string]any{"anyOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "null"}}, "default": nil},
	}
	if diff := cmp.Diff(wantArgs, tl.Args()); diff != "" {
		t.Errorf("Args (-want +got):\n%s", diff)
	}
	params := tl.Parameters()
	if diff := cmp.Diff([]any{"title", "limit"}, params["required"]); diff != "" || params["type"] != "object" {
		t.Errorf("Parameters = %v", params)
	}
	// Callers get copies.
	tl.Args()["title"].(map[string]any)["type"] = "integer"
	if tl.Args()["title"].(map[string]any)["type"] != "string" {
		t.Error("Args shares its maps")
	}
}

func TestNewToolRefuses(t *testing.T) {
	okFn := func(context.Context, tooltest.SearchArgs) (any, error) { return nil, nil }
	cases := []struct {
		name  string
		build func() error
		want  string
	}{
		{"empty name", func() error { _, err := tool.New("", "", okFn); return err }, "not an identifier"},
		{"dash in name", func() error { _, err := tool.New("web-search", "", okFn); return err }, "not an identifier"},
		{"leading digit", func() error { _, err := tool.New("1search", "", okFn); return err }, "not an identifier"},
		{"finish is reserved", func() error { _, err := tool.New("finish", "", okFn); return err }, "reserved"},
		{"nil function", func() error {
			_, err := tool.New[tooltest.SearchArgs]("search", "", nil)
			return err
		}, "no function"},
		{"string arguments", func() error {
			_, err := tool.New("search", "", func(context.Context, string) (any, error) { return nil, nil })
			return err
		}, "is not a struct"},
		{"pointer arguments", func() error {
			_, err := tool.New("search", "", func(context.Context, *tooltest.SearchArgs) (any, error) { return nil, nil })
			return err
		}, "is not a struct"},
		{"unsupported field type", func() error {
			_, err := tool.New("search", "", func(context.Context, struct{ C chan int }) (any, error) { return nil, nil })
			return err
		}, "unsupported Go type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.build()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

var errNotFound = errors.New("page not found")

func TestToolCall(t *testing.T) {
	var calls atomic.Int32
	type args struct {
		Title      string               `json:"title"`
		Limit      int                  `json:"limit"`
		Tags       []string             `json:"tags"`
		SinkFilter *tooltest.SinkFilter `json:"filter"`
	}
	tl := tooltest.MustTool(t, "lookup", "Looks a page up.", func(_ context.Context, a args) (any, error) {
		calls.Add(1)
		switch a.Title {
		case "missing":
			return nil, errNotFound
		case "boom":
			panic("index out of range")
		case "list":
			return a.Tags, nil
		case "struct":
			return tooltest.LookupResult{Title: a.Title, Text: "t"}, nil
		case "nil":
			return nil, nil
		case "filter":
			return a.SinkFilter.Year, nil
		}
		return fmt.Sprintf("%s x%d", a.Title, a.Limit), nil
	})
	cases := []struct {
		name    string
		args    map[string]any
		want    string
		wantErr string // substring of the error; "" for success
		badArgs bool
		called  bool
	}{
		{name: "string result", args: map[string]any{"title": "Go", "limit": 3, "tags": []string{}}, want: "Go x3", called: true},
		{name: "whole float is an int", args: map[string]any{"title": "Go", "limit": 3.0, "tags": []any{}}, want: "Go x3", called: true},
		{name: "list result is DSPy's numbered list", args: map[string]any{"title": "list", "limit": 1, "tags": []any{"a", "b"}}, want: "[1] «a»\n[2] «b»", called: true},
		{name: "null for a list", args: map[string]any{"title": "struct", "limit": 1, "tags": nil}, wantErr: `argument "tags": expected list[str], got null`, badArgs: true},
		{name: "struct result is JSON in field order", args: map[string]any{"title": "struct", "limit": 1, "tags": []any{}}, want: `{"title": "struct", "text": "t", "section": null}`, called: true},
		{name: "nil result", args: map[string]any{"title": "nil", "limit": 1, "tags": []any{}}, want: "None", called: true},
		{name: "nested object", args: map[string]any{"title": "filter", "limit": 1, "tags": []any{},
			"filter": map[string]any{"year": 2009, "lang": "en", "leaf": map[string]any{"v": 1}, "leaves": []any{}, "extra": "ignored"}}, want: "2009", called: true},
		{name: "unknown argument", args: map[string]any{"title": "Go", "limit": 1, "tags": []any{}, "titel": "x"}, wantErr: `tool lookup: argument "titel": not an argument of the tool (it takes arguments title, limit, tags, filter)`, badArgs: true},
		{name: "missing required argument", args: map[string]any{"limit": 1, "tags": []any{}}, wantErr: `tool lookup: argument "title": required but missing`, badArgs: true},
		{name: "string for int", args: map[string]any{"title": "Go", "limit": "3", "tags": []any{}}, wantErr: `tool lookup: argument "limit": expected int, got string "3"`, badArgs: true},
		{name: "fraction for int", args: map[string]any{"title": "Go", "limit": 2.5, "tags": []any{}}, wantErr: `argument "limit": expected int, got number 2.5`, badArgs: true},
		{name: "wrong list element", args: map[string]any{"title": "Go", "limit": 1, "tags": []any{"a", 2}}, wantErr: `argument "tags[1]": expected str, got number 2`, badArgs: true},
		{name: "nested missing field", args: map[string]any{"title": "Go", "limit": 1, "tags": []any{}, "filter": map[string]any{"year": 2009, "lang": "en", "leaves": []any{}}}, wantErr: `argument "filter.leaf": required but missing`, badArgs: true},
		{name: "nested literal", args: map[string]any{"title": "Go", "limit": 1, "tags": []any{}, "filter": map[string]any{"year": 2009, "lang": "fr", "leaf": map[string]any{"v": 1}, "leaves": []any{}}}, wantErr: `argument "filter.lang": string "fr" is not one of Literal['en', 'de']`, badArgs: true},
		{name: "tool error", args: map[string]any{"title": "missing", "limit": 1, "tags": []any{}}, wantErr: "tool lookup: page not found", called: true},
		{name: "panic is contained", args: map[string]any{"title": "boom", "limit": 1, "tags": []any{}}, wantErr: "tool lookup panicked: index out of range", called: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := calls.Load()
			got, err := tl.Call(context.Background(), c.args)
			if called := calls.Load() > before; called != c.called {
				t.Errorf("tool called = %v, want %v", called, c.called)
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("Call = %q, want %q", got, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, c.wantErr)
			}
			var te *tool.Error
			if !errors.As(err, &te) || te.Tool != "lookup" || te.BadArgs != c.badArgs {
				t.Fatalf("err = %#v, want a *tool.Error with BadArgs %v", err, c.badArgs)
			}
		})
	}
	t.Run("tool error unwraps", func(t *testing.T) {
		_, err := tl.Call(context.Background(), map[string]any{"title": "missing", "limit": 1, "tags": []any{}})
		if !errors.Is(err, errNotFound) {
			t.Errorf("errors.Is(%v, errNotFound) = false", err)
		}
	})
	t.Run("panic value is kept", func(t *testing.T) {
		_, err := tl.Call(context.Background(), map[string]any{"title": "boom", "limit": 1, "tags": []any{}})
		var te *tool.Error
		if !errors.As(err, &te) || te.Panic != "index out of range" {
			t.Errorf("err = %#v", err)
		}
	})
	t.Run("done context is not a tool error", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		before := calls.Load()
		_, err := tl.Call(ctx, map[string]any{"title": "Go", "limit": 1, "tags": []any{}})
		if !errors.Is(err, context.Canceled) || calls.Load() != before {
			t.Errorf("err = %v, calls %d", err, calls.Load()-before)
		}
	})
}

func TestToolCallJSON(t *testing.T) {
	tl := tooltest.GoldenTools(t)["lookup"]
	cases := []struct {
		raw, want, wantErr string
	}{
		{raw: `{"title": "Go", "limit": 5}`, want: `{"title": "Go", "text": "Go wa", "section": null}`},
		{raw: `{"title": "Go", "limit": 5, "section": "History"}`, want: `{"title": "Go", "text": "Go wa", "section": "History"}`},
		{raw: `{"title": "Go", limit: 5}`, wantErr: "tool lookup: arguments are not valid JSON"},
		{raw: `["Go", 5]`, wantErr: `tool lookup: arguments must be a JSON object, got array ["Go", 5]`},
		{raw: ``, wantErr: `argument "title": required but missing`},
		{raw: `{"title": "Go", "limit": 1e400}`, wantErr: "tool lookup"},
	}
	for _, c := range cases {
		t.Run(c.raw, func(t *testing.T) {
			got, err := tl.CallJSON(context.Background(), json.RawMessage(c.raw))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("CallJSON = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestToolWithoutArguments(t *testing.T) {
	tl := tooltest.MustTool(t, "now", "Tells the time.", func(context.Context, struct{}) (any, error) { return "noon", nil })
	if got := tl.String(); got != "now, whose description is <desc>Tells the time.</desc>. It takes arguments {}." {
		t.Errorf("String = %q", got)
	}
	if got, err := tl.CallJSON(context.Background(), json.RawMessage("null")); err != nil || got != "noon" {
		t.Errorf("CallJSON(null) = %q, %v", got, err)
	}
	if _, err := tl.Call(context.Background(), map[string]any{"x": 1}); err == nil || !strings.Contains(err.Error(), "it takes no arguments") {
		t.Errorf("err = %v", err)
	}
}

type TreeNode struct {
	Name     string     `json:"name"`
	Children []TreeNode `json:"children"`
}

func countNodes(n TreeNode) int {
	c := 1
	for _, ch := range n.Children {
		c += countNodes(ch)
	}
	return c
}

// DSPy cannot describe a recursive argument type at all; here the
// recursion is cut off in the description and still checked in values.
func TestToolWithRecursiveArguments(t *testing.T) {
	tl := tooltest.MustTool(t, "count", "", func(_ context.Context, a struct {
		Root TreeNode `json:"root"`
	}) (any, error) {
		return countNodes(a.Root), nil
	})
	want := "count. It takes arguments {'root': {'properties': {'name': {'title': 'Name', 'type': 'string'}, " +
		"'children': {'items': {}, 'title': 'Children', 'type': 'array'}}, 'required': ['name', 'children'], 'title': 'TreeNode', 'type': 'object'}}."
	if got := tl.String(); got != want {
		t.Errorf("String =\n%s\nwant\n%s", got, want)
	}
	tree := `{"root": {"name": "a", "children": [{"name": "b", "children": [{"name": "c", "children": []}]}]}}`
	if got, err := tl.CallJSON(context.Background(), json.RawMessage(tree)); err != nil || got != "3" {
		t.Errorf("CallJSON = %q, %v", got, err)
	}
	bad := `{"root": {"name": "a", "children": [{"name": "b", "children": [{"name": 3, "children": []}]}]}}`
	_, err := tl.CallJSON(context.Background(), json.RawMessage(bad))
	if err == nil || !strings.Contains(err.Error(), `argument "root.children[0].children[0].name": expected str, got number 3`) {
		t.Errorf("err = %v", err)
	}
}

func TestPythonReprOfStrings(t *testing.T) {
	type args struct {
		X string `json:"x" desc:"it's \"quoted\"\ttab\\ é \u200b \x01"`
		Y string `json:"y" desc:"plain 'single'"`
	}
	tl := tooltest.MustTool(t, "q", "", func(context.Context, args) (any, error) { return nil, nil })
	// Python: repr() of these descriptions.
	want := `q. It takes arguments {'x': {'type': 'string', 'description': 'it\'s "quoted"\ttab\\ é \u200b \x01'}, 'y': {'type': 'string', 'description': "plain 'single'"}}.`
	if got := tl.String(); got != want {
		t.Errorf("String =\n%s\nwant\n%s", got, want)
	}
}
