package lm

import (
	"context"
	"testing"
)

func TestAutoResponseFormat(t *testing.T) {
	t.Parallel()
	// The expectations are DSPy 3.4.1's: supports_response_schema gives
	// json_schema; response_format among the supported params without it
	// gives json_object; neither gives nothing.
	tests := map[string]ResponseFormatMode{
		"gpt-4o-mini":                          ResponseFormatJSONSchema,
		"gpt-4o-mini-2024-07-18":               ResponseFormatJSONSchema,
		"gpt-4o":                               ResponseFormatJSONSchema,
		"openai/gpt-4o":                        ResponseFormatJSONSchema,
		"GPT-4.1-nano":                         ResponseFormatJSONSchema,
		"gpt-5":                                ResponseFormatJSONSchema,
		"o1":                                   ResponseFormatJSONSchema,
		"o1-2024-12-17":                        ResponseFormatJSONSchema,
		"o3-mini":                              ResponseFormatJSONSchema,
		"o4-mini":                              ResponseFormatJSONSchema,
		"ft:gpt-4o-mini-2024-07-18:acme::abc1": ResponseFormatJSONSchema,
		"gpt-4o-2024-05-13":                    ResponseFormatJSONObject,
		"gpt-4o-audio-preview-2024-12-17":      ResponseFormatJSONObject,
		"gpt-3.5-turbo":                        ResponseFormatJSONObject,
		"gpt-4-turbo":                          ResponseFormatJSONObject,
		"gpt-4":                                ResponseFormatJSONObject,
		"gpt-3.5-turbo-16k":                    ResponseFormatNone,
		"o1-mini":                              ResponseFormatNone,
		"llama3.1:8b":                          ResponseFormatNone,
		"meta-llama/Llama-3.1-8B-Instruct":     ResponseFormatNone,
		"mock":                                 ResponseFormatNone,
		"":                                     ResponseFormatNone,
	}
	for model, want := range tests {
		if got := AutoResponseFormat(model); got != want {
			t.Errorf("AutoResponseFormat(%q) = %q, want %q", model, got, want)
		}
	}
}

type plainLM struct{}

// formatLM is an LM that names its response format.
type formatLM struct{ mode ResponseFormatMode }

func (formatLM) Model() string                                         { return "formats" }
func (formatLM) Complete(context.Context, *Request) (*Response, error) { return nil, nil }
func (f formatLM) ResponseFormat() ResponseFormatMode                  { return f.mode }

func (plainLM) Model() string                                         { return "plain" }
func (plainLM) Complete(context.Context, *Request) (*Response, error) { return nil, nil }

func TestResponseFormatThroughLayers(t *testing.T) {
	t.Parallel()
	if got := ResponseFormatFor(plainLM{}); got != ResponseFormatNone {
		t.Errorf("an LM that says nothing gets %q, want none", got)
	}
	if got := ResponseFormatFor(nil); got != ResponseFormatNone {
		t.Errorf("nil LM gets %q, want none", got)
	}
	stack := NewStack(formatLM{ResponseFormatJSONObject}, ExecConfig{})
	if got := ResponseFormatFor(stack); got != ResponseFormatJSONObject {
		t.Errorf("through the stack: %q, want json_object", got)
	}
	if _, err := ParseResponseFormatMode("JSON"); err == nil {
		t.Error(`ParseResponseFormatMode("JSON") accepted`)
	}
	if m, err := ParseResponseFormatMode(""); err != nil || m != ResponseFormatAuto {
		t.Errorf(`ParseResponseFormatMode("") = %q, %v; want auto`, m, err)
	}
}
