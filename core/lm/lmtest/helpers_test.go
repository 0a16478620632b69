package lmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/pyjson"
)

// tf describes a field of a test prompt: its name, Python type, and the
// note DSPy writes after "{name}" in the structure section.
type tf struct {
	name, typ, note string
}

const (
	floatNote   = "# note: the value you produce must be a single float value"
	intNote     = "# note: the value you produce must be a single int value"
	boolNote    = "# note: the value you produce must be True or False"
	literalNote = "# note: the value you produce must exactly match (no extra characters) one of: yes; no"
)

func schemaNoteFor(schema string) string {
	return "# note: the value you produce must adhere to the JSON schema: " + schema
}

func fieldList(fields []tf) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%d. `%s` (%s): ", i+1, f.name, f.typ)
	}
	return b.String()
}

func structureLine(f tf) string {
	s := "[[ ## " + f.name + " ## ]]\n{" + f.name + "}"
	if f.note != "" {
		s += "        " + f.note
	}
	return s
}

// chatSystem writes a system message as DSPy's ChatAdapter does.
func chatSystem(inputs, outputs []tf) string {
	var parts []string
	for _, f := range inputs {
		parts = append(parts, structureLine(tf{name: f.name}))
	}
	for _, f := range outputs {
		parts = append(parts, structureLine(f))
	}
	parts = append(parts, completedMarker)
	return "Your input fields are:\n" + fieldList(inputs) + "\nYour output fields are:\n" + fieldList(outputs) +
		"\nAll interactions will be structured in the following way, with the appropriate values filled in.\n\n" +
		strings.Join(parts, "\n\n") + "\nIn adhering to this structure, your objective is: \n        Answer the question."
}

// jsonSystem writes a system message as DSPy's JSONAdapter does.
func jsonSystem(inputs, outputs []tf) string {
	var in []string
	for _, f := range inputs {
		in = append(in, structureLine(tf{name: f.name}))
	}
	obj := pyjson.Object{}
	for _, f := range outputs {
		v := "{" + f.name + "}"
		if f.note != "" {
			v += "        " + f.note
		}
		obj = append(obj, pyjson.Member{Key: f.name, Value: v})
	}
	return "Your input fields are:\n" + fieldList(inputs) + "\nYour output fields are:\n" + fieldList(outputs) +
		"\nAll interactions will be structured in the following way, with the appropriate values filled in.\n\n" +
		"Inputs will have the following structure:\n\n" + strings.Join(in, "\n\n") +
		"\n\nOutputs will be a JSON object with the following fields.\n\n" + pyjson.Dumps(obj, 2) +
		"\nIn adhering to this structure, your objective is: \n        Answer the question."
}

func userMessage(question string) string {
	return "[[ ## question ## ]]\n" + question +
		"\n\nRespond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
}

// The prompt from the design brief: every kind of output type.
var (
	qaInputs  = []tf{{name: "question", typ: "str"}, {name: "context", typ: "list[str]"}}
	qaOutputs = []tf{
		{name: "reasoning", typ: "str"},
		{name: "answer", typ: "str"},
		{name: "confidence", typ: "float", note: floatNote},
		{name: "tags", typ: "list[str]", note: schemaNoteFor(`{"type": "array", "items": {"type": "string"}}`)},
		{name: "label", typ: "Literal['yes', 'no']", note: literalNote},
		{name: "summary", typ: "Summary", note: schemaNoteFor(`{"type": "object", "properties": {"headline": {"type": "string", "title": "Headline"}, "score": {"type": "number", "title": "Score"}}, "required": ["headline", "score"], "title": "Summary"}`)},
		{name: "count", typ: "int", note: intNote},
		{name: "flag", typ: "bool", note: boolNote},
		{name: "maybe", typ: "Union[int, NoneType]"},
		{name: "scores", typ: "dict[str, float]", note: schemaNoteFor(`{"type": "object", "additionalProperties": {"type": "number"}}`)},
		{name: "people", typ: "list[Person]", note: schemaNoteFor(personSchema)},
	}
)

const personSchema = `{"type": "array", "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string", "title": "City"}, "zip": {"type": "integer", "title": "Zip"}}, "required": ["city", "zip"], "title": "Address"}, "Person": {"type": "object", "properties": {"name": {"type": "string", "title": "Name"}, "age": {"type": "integer", "maximum": 120, "minimum": 18, "title": "Age"}, "address": {"$ref": "#/$defs/Address"}, "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Nickname"}}, "required": ["name", "age", "address"], "title": "Person"}}, "items": {"$ref": "#/$defs/Person"}}`

func chatBody(system, user string, extra map[string]any) map[string]any {
	b := map[string]any{
		"model": "test-model",
		"messages": []map[string]any{
			{"role": "system", "content": system},
			{"role": "user", "content": user},
		},
	}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func qaBody(extra map[string]any) map[string]any {
	return chatBody(chatSystem(qaInputs, qaOutputs), userMessage("What is the capital of France?"), extra)
}

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

var testClient = &http.Client{Timeout: 10 * time.Second}

// post sends a JSON body and returns the response and its body.
func post(t *testing.T, url string, body any) (*http.Response, []byte) {
	t.Helper()
	return postCtx(t, t.Context(), url, body, nil)
}

func postCtx(t *testing.T, ctx context.Context, url string, body any, header http.Header) (*http.Response, []byte) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, out
}

type testResponse struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

// complete posts a chat completion and decodes a 200 answer.
func complete(t *testing.T, s *Server, body any) testResponse {
	t.Helper()
	resp, data := post(t, s.URL()+"/chat/completions", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	if resp.Header.Get(SimulatorHeader) != "true" {
		t.Errorf("missing %s header", SimulatorHeader)
	}
	var r testResponse
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if len(r.Choices) == 0 {
		t.Fatalf("no choices in %s", data)
	}
	return r
}

var sectionRE = regexp.MustCompile(`\[\[ ## (\w+) ## \]\]\n?`)

// sections splits a chat-mode completion into field name -> value, and
// returns the names in order (the completed marker included).
func sections(text string) ([]string, map[string]string) {
	locs := sectionRE.FindAllStringSubmatchIndex(text, -1)
	var names []string
	values := map[string]string{}
	for i, loc := range locs {
		name := text[loc[2]:loc[3]]
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		names = append(names, name)
		values[name] = strings.TrimSpace(text[loc[1]:end])
	}
	return names, values
}

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }
