package lm

import (
	"context"
	"fmt"
	"iter"
	"strings"
)

// Delta is one piece of a streamed completion.
type Delta struct {
	// Index is the choice the text belongs to (0 unless n > 1).
	Index int
	// Text is the new text of that choice.
	Text string
	// FinishReason is set on the last delta of a choice ("stop", "length").
	FinishReason string
	// Usage is set on the final delta when the provider reports usage.
	Usage *Usage
	// Cached marks deltas replayed from the response cache: the whole
	// answer at once, not streamed.
	Cached bool
}

// Streamer is implemented by LMs that can stream completions. Stream yields
// deltas as the provider sends them; a failure is yielded once as the error
// of the last pair, and the sequence ends. Stopping the iteration early
// ends the request. Implementations honour ctx like Complete.
type Streamer interface {
	Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error]
}

// maxStreamChoices bounds a choice index in a stream, so that a broken
// server cannot make Collect allocate without limit.
const maxStreamChoices = 1 << 10

// Collect drains a stream into a Response, for callers (and layers) that
// need the whole completion.
func Collect(seq iter.Seq2[Delta, error]) (*Response, error) {
	var texts []*strings.Builder
	var finish []string
	res := &Response{}
	for d, err := range seq {
		if err != nil {
			return nil, err
		}
		if d.Index < 0 || d.Index >= maxStreamChoices {
			return nil, &Error{Kind: ErrBadResponse,
				Message: fmt.Sprintf("stream delta for choice %d, outside [0, %d)", d.Index, maxStreamChoices)}
		}
		for len(texts) <= d.Index {
			texts = append(texts, new(strings.Builder))
			finish = append(finish, "")
		}
		texts[d.Index].WriteString(d.Text)
		if d.FinishReason != "" {
			finish[d.Index] = d.FinishReason
		}
		if d.Usage != nil {
			res.Usage = *d.Usage
		}
	}
	res.Choices = make([]Choice, len(texts))
	for i := range texts {
		res.Choices[i] = Choice{Text: texts[i].String(), FinishReason: finish[i]}
	}
	return res, nil
}

// StreamOrComplete streams from m when it can, and otherwise yields the
// whole completion as one delta per choice.
func StreamOrComplete(ctx context.Context, m LM, req *Request) iter.Seq2[Delta, error] {
	if s, ok := m.(Streamer); ok {
		return s.Stream(ctx, req)
	}
	return func(yield func(Delta, error) bool) {
		res, err := m.Complete(ctx, req)
		if err != nil {
			yield(Delta{}, err)
			return
		}
		yieldResponse(res, false, yield)
	}
}

// yieldResponse yields a whole response as a stream: one delta per choice,
// marked Cached when cached is set, with the usage on the last.
func yieldResponse(res *Response, cached bool, yield func(Delta, error) bool) {
	for i, c := range res.Choices {
		d := Delta{Index: i, Text: c.Text, FinishReason: c.FinishReason, Cached: cached}
		if i == len(res.Choices)-1 {
			u := res.Usage
			d.Usage = &u
		}
		if !yield(d, nil) {
			return
		}
	}
}
