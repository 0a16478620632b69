package lm

import (
	"fmt"
	"strings"
)

// ResponseFormatMode says which response_format an endpoint is sent when an
// adapter wants JSON (the JSON adapter, and ChatAdapter's fallback to it).
// The choice is made before the call; as in DSPy, a server that rejects
// the format it is sent gets no second request with another one (its 400
// is returned), so set the mode for such a server explicitly.
type ResponseFormatMode string

// Response format modes. The zero value means ResponseFormatAuto.
const (
	// ResponseFormatAuto decides from the model name, as DSPy decides from
	// its model catalogue: json_schema for models known to support OpenAI
	// structured outputs, json_object for models known to support JSON
	// mode only, and nothing for any other model (a local model behind
	// vLLM or Ollama, say), so that a server that would reject the field
	// never sees it. See AutoResponseFormat.
	ResponseFormatAuto ResponseFormatMode = "auto"
	// ResponseFormatJSONSchema sends {"type": "json_schema"} with the
	// outputs' strict schema, or json_object when the outputs cannot be
	// expressed strictly (an open-ended dict).
	ResponseFormatJSONSchema ResponseFormatMode = "json_schema"
	// ResponseFormatJSONObject sends {"type": "json_object"}.
	ResponseFormatJSONObject ResponseFormatMode = "json_object"
	// ResponseFormatNone sends no response_format: the prompt alone asks
	// for JSON.
	ResponseFormatNone ResponseFormatMode = "none"
)

// ParseResponseFormatMode reads a mode as written in a program file or on a
// command line; "" is ResponseFormatAuto.
func ParseResponseFormatMode(s string) (ResponseFormatMode, error) {
	m, err := parseResponseFormatMode(s)
	if err != nil {
		return "", fmt.Errorf("lm: %w", err)
	}
	return m, nil
}

func parseResponseFormatMode(s string) (ResponseFormatMode, error) {
	switch m := ResponseFormatMode(s); m {
	case "":
		return ResponseFormatAuto, nil
	case ResponseFormatAuto, ResponseFormatJSONSchema, ResponseFormatJSONObject, ResponseFormatNone:
		return m, nil
	}
	return "", fmt.Errorf("unknown response format mode %q (want auto, json_schema, json_object or none)", s)
}

// ResponseFormatter is implemented by LMs that know which response_format
// their endpoint takes. Every execution layer passes its provider's answer
// through.
type ResponseFormatter interface {
	// ResponseFormat returns the mode to use: json_schema, json_object or
	// none (never auto: that is resolved when the LM is built).
	ResponseFormat() ResponseFormatMode
}

// ResponseFormatFor returns the response format mode of m. An LM that does
// not implement ResponseFormatter (or a nil one) gets none, as DSPy sends
// no response_format to an LM that declares no support for it.
func ResponseFormatFor(m LM) ResponseFormatMode {
	f, ok := m.(ResponseFormatter)
	if !ok || f == nil {
		return ResponseFormatNone
	}
	switch mode := f.ResponseFormat(); mode {
	case ResponseFormatJSONSchema, ResponseFormatJSONObject:
		return mode
	}
	return ResponseFormatNone
}

// AutoResponseFormat is what ResponseFormatAuto means for a model name. It
// follows the model catalogue DSPy 3.4.1 ships (supports_response_schema,
// and response_format among the supported parameters) for OpenAI's chat
// models, by name family, with or without a provider prefix ("openai/",
// as OpenRouter names them) or a fine-tune prefix ("ft:"):
//
//   - json_schema: gpt-4o and gpt-4o-mini (not gpt-4o-2024-05-13 or the
//     audio previews), gpt-4.1*, gpt-5*, gpt-6*, o1 and its dated
//     versions, o3*, o4-mini*, chat-latest;
//   - json_object: gpt-3.5-turbo* (not gpt-3.5-turbo-16k), gpt-4,
//     gpt-4-0613, gpt-4-turbo*, gpt-4-1106-preview, gpt-4o-2024-05-13,
//     gpt-4o*-audio-preview*, gpt-audio*;
//   - none: every other name. DSPEx cannot know what an unknown model
//     served by an unknown server accepts; DSPy sends nothing then too.
//
// The base URL plays no part, as in DSPy: a known model name is trusted
// wherever it is served.
func AutoResponseFormat(model string) ResponseFormatMode {
	name := strings.ToLower(strings.TrimSpace(model))
	name = strings.TrimPrefix(name, "openai/")
	name = strings.TrimPrefix(name, "ft:")
	if i := strings.IndexByte(name, ':'); i >= 0 { // "ft:gpt-4o-mini-2024-07-18:org::id"
		name = name[:i]
	}
	switch {
	case name == "gpt-3.5-turbo-16k":
		return ResponseFormatNone
	case strings.Contains(name, "audio-preview"), name == "gpt-4o-2024-05-13", strings.HasPrefix(name, "gpt-audio"):
		return ResponseFormatJSONObject
	case name == "gpt-4o", strings.HasPrefix(name, "gpt-4o-"),
		strings.HasPrefix(name, "gpt-4.1"), strings.HasPrefix(name, "gpt-5"), strings.HasPrefix(name, "gpt-6"),
		name == "o1", isDated(name, "o1"),
		name == "o3", strings.HasPrefix(name, "o3-"),
		name == "o4-mini", strings.HasPrefix(name, "o4-mini-"),
		name == "chat-latest":
		return ResponseFormatJSONSchema
	case strings.HasPrefix(name, "gpt-3.5-turbo"), name == "gpt-4", name == "gpt-4-0613",
		strings.HasPrefix(name, "gpt-4-turbo"), name == "gpt-4-1106-preview":
		return ResponseFormatJSONObject
	}
	return ResponseFormatNone
}

// isDated reports whether name is base followed by a date, "o1-2024-12-17".
func isDated(name, base string) bool {
	rest, ok := strings.CutPrefix(name, base+"-")
	if !ok || len(rest) != len("2006-01-02") {
		return false
	}
	for i, r := range rest {
		if i == 4 || i == 7 {
			if r != '-' {
				return false
			}
		} else if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
