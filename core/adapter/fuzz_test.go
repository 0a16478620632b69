package adapter

import (
	"testing"

	"github.com/dspex/dspex/core/signature"
)

var fuzzSig = signature.MustParse("question -> reasoning, answer: int, tags: list[str], label: Literal['a', 'b'], extra: dict[str, float] | None")

func FuzzChatParse(f *testing.F) {
	for _, s := range []string{
		"[[ ## reasoning ## ]]\nr\n\n[[ ## answer ## ]]\n4\n\n[[ ## tags ## ]]\n[\"x\"]\n\n[[ ## label ## ]]\na\n\n[[ ## completed ## ]]\n",
		"[[ ## answer ## ]] 4\n[[ ## answer ## ]] 5",
		"no markers at all",
		"[[ ## tags ## ]]\n[[[[",
		"[[ ## extra ## ]]\n{'a': 1.5,",
		"\r\n[[ ## label ## ]]\r\n'b'\u2028",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := (&ChatAdapter{}).Parse(fuzzSig, s)
		if err != nil {
			if !IsParseError(err) {
				t.Fatalf("error is not a *ParseError: %v", err)
			}
			return
		}
		if len(out) != fuzzSig.NumOutputs() {
			t.Fatalf("parsed %d fields, signature has %d", len(out), fuzzSig.NumOutputs())
		}
	})
}

func FuzzJSONParse(f *testing.F) {
	for _, s := range []string{
		`{"reasoning": "r", "answer": 4, "tags": ["x"], "label": "a", "extra": null}`,
		"```json\n{'answer': '4'}\n```",
		`prose {"answer": {"nested": [1, 2, {"deep": true}]}} prose`,
		`{"answer": 1e999}`,
		`{"tags": "[\"a\"]"`,
		`[]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := JSONAdapter{}.Parse(fuzzSig, s)
		if err != nil {
			if !IsParseError(err) {
				t.Fatalf("error is not a *ParseError: %v", err)
			}
			return
		}
		if len(out) != fuzzSig.NumOutputs() {
			t.Fatalf("parsed %d fields, signature has %d", len(out), fuzzSig.NumOutputs())
		}
	})
}
