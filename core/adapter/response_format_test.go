package adapter

import (
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/signature"
)

// Each response format setting sends what it says, seen from the simulated
// LM's side of the wire.
func TestResponseFormatSettings(t *testing.T) {
	srv, err := lmtest.Start(t.Context(), lmtest.Config{RecordLimit: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	cot, err := signature.MustParse("question -> answer: int").PrependOutput(signature.Field{Name: "reasoning"})
	if err != nil {
		t.Fatal(err)
	}
	dict := signature.MustParse("question -> scores: dict[str, int]")
	tests := []struct {
		name       string
		model      string
		mode       lm.ResponseFormatMode
		sig        *signature.Signature
		wantType   string // "" for no response_format
		wantSchema string // a prefix of the schema sent
	}{
		{"auto, known structured-output model", "gpt-4o-mini", "", cot, "json_schema",
			`{"additionalProperties":false,"properties":{"reasoning":{"title":"Reasoning","type":"string"},"answer":{"title":"Answer","type":"integer"}},"required":["reasoning","answer"]`},
		{"auto, JSON-mode model", "gpt-3.5-turbo", lm.ResponseFormatAuto, cot, "json_object", ""},
		{"auto, unknown model", "llama3.1:8b", lm.ResponseFormatAuto, cot, "", ""},
		{"json_schema", "llama3.1:8b", lm.ResponseFormatJSONSchema, cot, "json_schema", `{"additionalProperties":false,"properties":{"reasoning"`},
		{"json_schema, open dict", "llama3.1:8b", lm.ResponseFormatJSONSchema, dict, "json_object", ""},
		{"json_object", "gpt-4o", lm.ResponseFormatJSONObject, cot, "json_object", ""},
		{"none", "gpt-4o", lm.ResponseFormatNone, cot, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model, err := openai.New(openai.Config{Model: tt.model, BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_NO_SUCH_KEY", ResponseFormat: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			before := len(srv.Requests())
			_, err = Call(t.Context(), JSONAdapter{}, model, Request{Signature: tt.sig, Inputs: map[string]any{"question": "2+2?"}})
			if err != nil {
				t.Fatalf("Call: %v", err)
			}
			reqs := srv.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("%d requests recorded, want one more than %d", len(reqs), before)
			}
			got := reqs[len(reqs)-1]
			if got.ResponseFormat != tt.wantType {
				t.Errorf("response_format type = %q, want %q", got.ResponseFormat, tt.wantType)
			}
			if tt.wantSchema != "" && !strings.HasPrefix(got.ResponseSchema, tt.wantSchema) {
				t.Errorf("schema sent\n %s\nwant it to start\n %s", got.ResponseSchema, tt.wantSchema)
			}
			if tt.wantSchema == "" && got.ResponseSchema != "" {
				t.Errorf("schema sent %s, want none", got.ResponseSchema)
			}
		})
	}
}
