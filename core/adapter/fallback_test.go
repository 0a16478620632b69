package adapter

import (
	"context"
	"testing"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// countingAdapter wraps another adapter the usual Go way, embedding it,
// and counts the prompts it formats.
type countingAdapter struct {
	Adapter
	formats int
}

func (c *countingAdapter) Format(sig *signature.Signature, demos []example.Example, inputs map[string]any) ([]lm.Message, error) {
	c.formats++
	return c.Adapter.Format(sig, demos, inputs)
}

// A wrapped ChatAdapter keeps its JSON fallback: the fallback is the
// adapter's own setting (Fallback), not a type check on *ChatAdapter.
func TestWrappedChatAdapterKeepsFallback(t *testing.T) {
	sig := signature.MustParse("question -> answer: int")
	req := Request{Signature: sig, Inputs: map[string]any{"question": "2+2?"}}
	for _, tc := range []struct {
		name     string
		inner    *ChatAdapter
		fallback bool
	}{
		{"chat", &ChatAdapter{}, true},
		{"chat without fallback", &ChatAdapter{NoFallback: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &scriptedLM{answers: []string{"four", `{"answer": 4}`}, format: lm.ResponseFormatJSONSchema}
			a := &countingAdapter{Adapter: tc.inner}
			res, err := Call(context.Background(), a, m, req)
			if !tc.fallback {
				if !IsParseError(err) || len(m.reqs) != 1 {
					t.Fatalf("err = %v after %d requests; want the parse error, no fallback", err, len(m.reqs))
				}
				return
			}
			if err != nil {
				t.Fatalf("wrapped ChatAdapter did not fall back: %v", err)
			}
			if res.Adapter != "JSONAdapter" || res.Outputs[0]["answer"] != int64(4) || len(m.reqs) != 2 || a.formats != 1 {
				t.Errorf("result %+v after %d requests, %d formats by the wrapper", res, len(m.reqs), a.formats)
			}
		})
	}
	if (JSONAdapter{}).Fallback() != nil {
		t.Error("JSONAdapter has a fallback")
	}
}
