package adapter

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

func TestChatParse(t *testing.T) {
	sig := signature.MustParse("question -> reasoning, answer: int, tags: list[str], note: str | None")
	cases := []struct {
		name       string
		completion string
		want       map[string]any
		wantField  string
		wantMiss   []string
	}{
		{
			name:       "all fields",
			completion: "[[ ## reasoning ## ]]\nTwo and two.\nMakes four.\n\n[[ ## answer ## ]]\n4\n\n[[ ## tags ## ]]\n[\"math\"]\n\n[[ ## note ## ]]\nnone needed\n\n[[ ## completed ## ]]",
			want:       map[string]any{"reasoning": "Two and two.\nMakes four.", "answer": int64(4), "tags": []any{"math"}, "note": "none needed"},
		},
		{
			name:       "first section wins, inline values, optional absent",
			completion: "preamble\n  [[ ## answer ## ]] 7\n[[ ## reasoning ## ]]\nr\n[[ ## tags ## ]]\n['a', 'b',]\n[[ ## answer ## ]]\n8",
			want:       map[string]any{"reasoning": "r", "answer": int64(7), "tags": []any{"a", "b"}, "note": nil},
		},
		{
			name:       "unknown sections ignored",
			completion: "[[ ## reasoning ## ]]\nr\n[[ ## bogus ## ]]\nx\n[[ ## answer ## ]]\n1\n[[ ## tags ## ]]\n[]",
			want:       map[string]any{"reasoning": "r", "answer": int64(1), "tags": []any{}, "note": nil},
		},
		{
			name:       "broken int",
			completion: "[[ ## reasoning ## ]]\nr\n[[ ## answer ## ]]\nfour\n[[ ## tags ## ]]\n[]",
			wantField:  "answer",
		},
		{
			name:       "missing fields",
			completion: "[[ ## reasoning ## ]]\nonly this",
			wantMiss:   []string{"answer", "tags"},
		},
		{
			name:       "no markers",
			completion: "The answer is 4.",
			wantMiss:   []string{"reasoning", "answer", "tags"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := (&ChatAdapter{}).Parse(sig, c.completion)
			if c.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(c.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ParseError", err)
			}
			if pe.Raw != c.completion || pe.Adapter != "ChatAdapter" {
				t.Errorf("ParseError does not carry the raw text and adapter: %+v", pe)
			}
			if pe.Field != c.wantField || !cmp.Equal(pe.Missing, c.wantMiss) {
				t.Errorf("field %q missing %v, want %q %v", pe.Field, pe.Missing, c.wantField, c.wantMiss)
			}
		})
	}
}

func TestJSONParse(t *testing.T) {
	sig := signature.MustParse("question -> answer, score: float, ok: bool, label: Literal['a', 'b']")
	cases := []struct {
		name       string
		completion string
		want       map[string]any
		wantErr    string
	}{
		{"plain", `{"answer": "Paris", "score": 0.5, "ok": true, "label": "a"}`,
			map[string]any{"answer": "Paris", "score": 0.5, "ok": true, "label": "a"}, ""},
		{"fenced and python-ish", "```json\n{'answer': 42, 'score': '1', 'ok': True, 'label': 'b', 'extra': 1,}\n```",
			map[string]any{"answer": "42", "score": 1.0, "ok": true, "label": "b"}, ""},
		{"object inside prose", "Sure! Here it is: {\"answer\": \"x\", \"score\": 2, \"ok\": \"no\", \"label\": \"Literal['a']\"} Hope it helps.",
			map[string]any{"answer": "x", "score": 2.0, "ok": false, "label": "a"}, ""},
		{"truncated", `{"answer": "cut off", "score": 0.1, "ok": false, "label": "a`,
			map[string]any{"answer": "cut off", "score": 0.1, "ok": false, "label": "a"}, ""},
		{"not json", "I cannot answer that.", nil, "cannot be read as a JSON object"},
		{"array", `[1, 2]`, nil, "cannot be read as a JSON object"},
		{"bad literal", `{"answer": "x", "score": 1, "ok": true, "label": "c"}`, nil, `field "label"`},
		{"missing", `{"answer": "x"}`, nil, "missing output fields `score`, `ok`, `label`"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := JSONAdapter{}.Parse(sig, c.completion)
			if c.wantErr != "" {
				if !IsParseError(err) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want ParseError mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// scriptedLM answers requests in order and records them.
type scriptedLM struct {
	answers []string
	err     error
	format  lm.ResponseFormatMode
	reqs    []*lm.Request
}

func (s *scriptedLM) Model() string                         { return "scripted" }
func (s *scriptedLM) ResponseFormat() lm.ResponseFormatMode { return s.format }
func (s *scriptedLM) Complete(_ context.Context, r *lm.Request) (*lm.Response, error) {
	s.reqs = append(s.reqs, r)
	if s.err != nil {
		return nil, s.err
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return &lm.Response{Choices: []lm.Choice{{Text: a}}}, nil
}

func TestCallFallsBackOnParseErrorOnly(t *testing.T) {
	sig := signature.MustParse("question -> answer: int")
	req := Request{Signature: sig, Inputs: map[string]any{"question": "2+2?"}}

	t.Run("parse error falls back to JSON", func(t *testing.T) {
		m := &scriptedLM{answers: []string{"four", `{"answer": 4}`}, format: lm.ResponseFormatJSONSchema}
		res, err := Call(context.Background(), &ChatAdapter{}, m, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Adapter != "JSONAdapter" || res.Outputs[0]["answer"] != int64(4) || !IsParseError(res.FallbackErr) {
			t.Fatalf("result = %+v", res)
		}
		if len(m.reqs) != 2 || m.reqs[0].ResponseFormat != nil || m.reqs[1].ResponseFormat.Type != "json_schema" {
			t.Fatalf("requests: chat then json_schema expected, got %d", len(m.reqs))
		}
	})
	t.Run("provider error does not fall back", func(t *testing.T) {
		m := &scriptedLM{err: &lm.Error{Kind: lm.ErrServer, StatusCode: 500}}
		_, err := Call(context.Background(), &ChatAdapter{}, m, req)
		if !errors.Is(err, lm.ErrServer) || len(m.reqs) != 1 {
			t.Fatalf("err = %v after %d requests", err, len(m.reqs))
		}
	})
	t.Run("fallback disabled", func(t *testing.T) {
		m := &scriptedLM{answers: []string{"four"}}
		_, err := Call(context.Background(), &ChatAdapter{NoFallback: true}, m, req)
		if !IsParseError(err) || len(m.reqs) != 1 {
			t.Fatalf("err = %v after %d requests", err, len(m.reqs))
		}
	})
	t.Run("both fail: JSON error returned", func(t *testing.T) {
		m := &scriptedLM{answers: []string{"four", "still four"}, format: lm.ResponseFormatJSONObject}
		res, err := Call(context.Background(), &ChatAdapter{}, m, req)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Adapter != "JSONAdapter" || pe.Raw != "still four" {
			t.Fatalf("err = %v", err)
		}
		if res == nil || res.FallbackErr == nil {
			t.Fatal("fallback error not kept")
		}
		if m.reqs[1].ResponseFormat.Type != "json_object" {
			t.Errorf("model with JSON mode only got %q", m.reqs[1].ResponseFormat.Type)
		}
	})
}
