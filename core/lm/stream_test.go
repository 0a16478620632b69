package lm

import (
	"context"
	"errors"
	"testing"
)

func TestCollectInterleavedChoices(t *testing.T) {
	deltas := []Delta{{Index: 0, Text: "a"}, {Index: 2, Text: "x"}, {Index: 1, Text: "m"}, {Index: 0, Text: "b", FinishReason: "stop"},
		{Index: 2, Text: "y", FinishReason: "length"}, {Index: 1, Text: "n"}, {Index: 0, Usage: &Usage{TotalTokens: 9}}}
	res, err := Collect(func(yield func(Delta, error) bool) {
		for _, d := range deltas {
			if !yield(d, nil) {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 3 || res.Choices[0].Text != "ab" || res.Choices[1].Text != "mn" || res.Choices[2].Text != "xy" ||
		res.Choices[2].FinishReason != "length" || res.Usage.TotalTokens != 9 {
		t.Errorf("collected %+v", res)
	}
	if _, err := Collect(func(yield func(Delta, error) bool) { yield(Delta{Index: 5000}, nil) }); !errors.Is(err, ErrBadResponse) {
		t.Errorf("out-of-range index: %v", err)
	}
	boom := &Error{Kind: ErrServer}
	if _, err := Collect(func(yield func(Delta, error) bool) { yield(Delta{Text: "x"}, nil); yield(Delta{}, boom) }); !errors.Is(err, ErrServer) {
		t.Errorf("error not returned: %v", err)
	}
}

type fixedLM struct{ res *Response }

func (f fixedLM) Model() string { return "fixed" }
func (f fixedLM) Complete(context.Context, *Request) (*Response, error) {
	return f.res.Clone(), nil
}

func TestStreamOrCompleteFallsBack(t *testing.T) {
	m := fixedLM{&Response{Choices: []Choice{{Text: "one", FinishReason: "stop"}, {Text: "two"}}, Usage: Usage{TotalTokens: 3}}}
	res, err := Collect(StreamOrComplete(context.Background(), m, &Request{}))
	if err != nil || res.Choices[1].Text != "two" || res.Usage.TotalTokens != 3 {
		t.Errorf("res = %+v err = %v", res, err)
	}
}
