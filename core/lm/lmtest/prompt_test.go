package lmtest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParsePromptChat(t *testing.T) {
	p, ok := parsePrompt(chatSystem(qaInputs, qaOutputs))
	if !ok {
		t.Fatal("prompt not understood")
	}
	if p.JSON {
		t.Error("chat prompt read as JSON")
	}
	var names []string
	for _, f := range p.Outputs {
		names = append(names, f.Name)
	}
	want := []string{"reasoning", "answer", "confidence", "tags", "label", "summary", "count", "flag", "maybe", "scores", "people"}
	if !slices.Equal(names, want) {
		t.Fatalf("outputs = %v, want %v", names, want)
	}
	if len(p.Inputs) != 2 || p.Inputs[1].Name != "context" || p.Inputs[1].Type.Kind != kList {
		t.Errorf("inputs = %+v", p.Inputs)
	}
	kinds := map[string]kind{
		"reasoning": kStr, "confidence": kFloat, "tags": kList, "label": kLiteral, "summary": kObject,
		"count": kInt, "flag": kBool, "maybe": kOptional, "scores": kDict, "people": kList,
	}
	for _, f := range p.Outputs {
		if k, ok := kinds[f.Name]; ok && f.Type.Kind != k {
			t.Errorf("%s: kind %d, want %d", f.Name, f.Type.Kind, k)
		}
	}
	summary := p.Outputs[5].Type
	if len(summary.Props) != 2 || summary.Props[0].Name != "headline" || summary.Props[1].Type.Kind != kFloat {
		t.Errorf("summary props = %+v", summary.Props)
	}
	person := p.Outputs[10].Type.Elem
	if person.Kind != kObject || person.Name != "Person" || len(person.Props) != 4 {
		t.Fatalf("person = %+v", person)
	}
	if addr := person.Props[2].Type; addr.Kind != kObject || addr.Name != "Address" {
		t.Errorf("address = %+v", addr)
	}
	if nick := person.Props[3].Type; nick.Kind != kOptional || nick.Elem.Kind != kStr {
		t.Errorf("nickname = %+v", nick)
	}
}

func TestParsePromptJSON(t *testing.T) {
	p, ok := parsePrompt(jsonSystem(qaInputs, qaOutputs))
	if !ok || !p.JSON {
		t.Fatalf("JSON prompt: ok=%v json=%v", ok, p != nil && p.JSON)
	}
	if len(p.Outputs) != len(qaOutputs) {
		t.Fatalf("got %d outputs", len(p.Outputs))
	}
	if got := p.Outputs[5].Type; got.Kind != kObject || len(got.Props) != 2 {
		t.Errorf("summary from escaped JSON note = %+v", got)
	}
	if got := p.Outputs[10].Type; got.Kind != kList || got.Elem.Name != "Person" {
		t.Errorf("people = %+v", got)
	}
}

func TestParsePromptEdges(t *testing.T) {
	tests := []struct {
		name    string
		system  string
		ok      bool
		outputs []string
		types   []string
	}{
		{name: "no output block", system: "You are a helpful assistant.", ok: false},
		{name: "empty output block", system: "Your output fields are:\nAll interactions will be structured", ok: false},
		{
			name:    "no inputs, CRLF, multi-line description",
			system:  "Your output fields are:\r\n1. `answer` (str): first line\r\n    second line\r\n2. `n` (int): \r\nAll interactions will be structured in the following way",
			ok:      true,
			outputs: []string{"answer", "n"},
			types:   []string{"str", "int"},
		},
		{
			name:    "tricky literal",
			system:  "Your output fields are:\n1. `x` (Literal['a, b', \"c)\", 3, True, None]): desc (with parens)\n",
			ok:      true,
			outputs: []string{"x"},
			types:   []string{"literal"},
		},
		{
			name:    "unreadable type is str",
			system:  "Your output fields are:\n1. `x` (list of ints): \n",
			ok:      true,
			outputs: []string{"x"},
			types:   []string{"str"},
		},
	}
	kindName := map[kind]string{kStr: "str", kInt: "int", kLiteral: "literal"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := parsePrompt(tt.system)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			for i, f := range p.Outputs {
				if i >= len(tt.outputs) || f.Name != tt.outputs[i] {
					t.Fatalf("outputs = %+v, want %v", p.Outputs, tt.outputs)
				}
				if got := kindName[f.Type.Kind]; got != tt.types[i] {
					t.Errorf("%s: type %q, want %q", f.Name, got, tt.types[i])
				}
			}
		})
	}
	p, _ := parsePrompt("Your output fields are:\n1. `answer` (str): first line\n    second line\n")
	if p.Outputs[0].Desc != "first line\n    second line" {
		t.Errorf("desc = %q", p.Outputs[0].Desc)
	}
	p, _ = parsePrompt("Your output fields are:\n1. `x` (Literal['a, b', \"c)\", 3, True, None]): \n")
	want := []any{"a, b", "c)", int64(3), true, nil}
	if !slices.Equal(p.Outputs[0].Type.Values, want) {
		t.Errorf("literal values = %#v, want %#v", p.Outputs[0].Type.Values, want)
	}
}

func TestParsePyType(t *testing.T) {
	tests := []struct {
		in   string
		kind kind
		elem kind
	}{
		{"str", kStr, 0},
		{"int", kInt, 0},
		{"float", kFloat, 0},
		{"bool", kBool, 0},
		{"Any", kAny, 0},
		{"list[int]", kList, kInt},
		{"typing.List[float]", kList, kFloat},
		{"dict[str, bool]", kDict, kBool},
		{"Union[int, NoneType]", kOptional, kInt},
		{"Optional[list[str]]", kOptional, kList},
		{"int | None", kOptional, kInt},
		{"Union[str, int]", kStr, 0},
		{"tuple[int, ...]", kList, kInt},
		{"tuple[int, str]", kTuple, 0},
		{"Literal['a']", kLiteral, 0},
		{"MyModel", kObject, 0},
		{"list[", kStr, 0},
		{"", kStr, 0},
		{"int]", kStr, 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := parsePyType(tt.in)
			if got.Kind != tt.kind {
				t.Fatalf("kind = %d, want %d", got.Kind, tt.kind)
			}
			if tt.elem != 0 && (got.Elem == nil || got.Elem.Kind != tt.elem) {
				t.Errorf("elem = %+v, want kind %d", got.Elem, tt.elem)
			}
		})
	}
}

func TestRecursiveSchemaTerminates(t *testing.T) {
	note := schemaNoteFor(`{"$defs": {"Node": {"type": "object", "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}, "title": "Node"}}, "$ref": "#/$defs/Node"}`)
	p, ok := parsePrompt(chatSystem(nil, []tf{{name: "tree", typ: "Node", note: note}}))
	if !ok {
		t.Fatal("not understood")
	}
	g := &generator{r: newTestRand(1)}
	v := g.value(p.Outputs[0].Type, "tree", 0)
	if s := chatValue(v); !strings.HasPrefix(s, `{"value": `) {
		t.Errorf("tree = %s", s)
	}
}

func TestUserSections(t *testing.T) {
	msg := "intro\n[[ ## question ## ]]\nWhy?\n\n[[ ## context ## ]]\n[\"a\"]\n\nRespond with ..."
	got := userSections(msg)
	if len(got) != 2 || got[0] != (section{"question", "Why?"}) || got[1].Name != "context" {
		t.Errorf("sections = %+v", got)
	}
	if got := snippet("  What   is the [[ ## capital ## ]] of \"France\" and also of many other places?"); got != "What is the capital of France..." {
		t.Errorf("snippet = %q", got)
	}
}

// FuzzParsePrompt checks that no system message makes the prompt parser or
// the value generator panic or run away. The seeds are whole prompts, so
// cap minimization when fuzzing: go test -fuzz FuzzParsePrompt
// -fuzzminimizetime 5s ./core/lm/lmtest/
func FuzzParsePrompt(f *testing.F) {
	f.Add(chatSystem(qaInputs, qaOutputs))
	f.Add(jsonSystem(qaInputs, qaOutputs))
	f.Add("Your output fields are:\n1. `x` (Literal['a', \"b\"]): \n")
	f.Add("Your output fields are:\n1. `x` (list[dict[str, Union[int, NoneType]]]): \n2. `y` (tuple[int, ...]):")
	f.Add("Your output fields are:\n1. `t` (T):\n[[ ## t ## ]]\n{t}        # note: the value you produce must adhere to the JSON schema: {\"$ref\": \"#/$defs/T\", \"$defs\": {\"T\": {\"$ref\": \"#/$defs/T\"}}}")
	f.Add("Your output fields are:\n1. `x` (((((")
	f.Add("1. `a` (str): Your output fields are:")
	f.Fuzz(func(t *testing.T, system string) {
		p, ok := parsePrompt(system)
		if !ok {
			return
		}
		if len(p.Outputs) == 0 || len(p.Outputs) > maxPromptFields {
			t.Fatalf("ok with %d outputs", len(p.Outputs))
		}
		g := &generator{r: newTestRand(7), snippet: "x"}
		names := make([]string, len(p.Outputs))
		values := make([]any, len(p.Outputs))
		for i, f := range p.Outputs {
			if f.Name == "" || f.Type == nil {
				t.Fatalf("bad field %+v", f)
			}
			names[i], values[i] = f.Name, g.value(f.Type, f.Name, 0)
		}
		_ = chatText(names, values)
		_ = jsonText(names, values)
	})
}

func FuzzUnquoteJSON(f *testing.F) {
	for _, s := range []string{`"plain"`, `"a\nb\t\"c\"\\d\/"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00"`, `"x\q"`, `"`, `"\u12"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := unquoteJSON([]byte(s))
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			if json.Valid([]byte(s)) {
				t.Fatalf("%q: encoding/json fails (%v) on valid JSON", s, err)
			}
			return // callers only pass strings encoding/json has validated
		}
		if got != want {
			t.Fatalf("unquoteJSON(%q) = %q, encoding/json gives %q", s, got, want)
		}
	})
}
