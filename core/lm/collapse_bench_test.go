package lm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/lm"
)

// instantLM answers every request at once with the same small response.
type instantLM struct{}

func (instantLM) Model() string { return "instant" }
func (instantLM) Complete(context.Context, *lm.Request) (*lm.Response, error) {
	return &lm.Response{Choices: []lm.Choice{{Text: "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]", FinishReason: "stop"}},
		Usage: lm.Usage{PromptTokens: 500, CompletionTokens: 10, TotalTokens: 510}}, nil
}

// BenchmarkCollapseOverhead measures what the collapse layer adds to a call
// when no identical request is in flight: the default stack (no cache)
// over a provider that answers at once, with and without collapse,
// alternating call by call. It reports both per-call times and their
// difference, collapse-ns/op.
func BenchmarkCollapseOverhead(b *testing.B) {
	with := lm.NewStack(instantLM{}, lm.ExecConfig{})
	without := lm.NewStack(instantLM{}, lm.ExecConfig{NoCollapse: true})
	// A prompt of about 2 KB, like a ChainOfThought call with a few demos.
	req := &lm.Request{Messages: []lm.Message{
		{Role: lm.RoleSystem, Content: strings.Repeat("Your input fields are: question. Your output fields are: answer. ", 24)},
		{Role: lm.RoleUser, Content: "[[ ## question ## ]]\nWhat is two plus two?\n\nRespond with the corresponding output fields."},
	}, Params: lm.Params{Temperature: lm.Float(0)}}
	ctx := context.Background()
	var tWith, tWithout time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := without.Complete(ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := with.Complete(ctx, req); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tWithout += t1.Sub(t0)
		tWith += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tWith.Nanoseconds())/n, "with-ns/op")
	b.ReportMetric(float64(tWithout.Nanoseconds())/n, "without-ns/op")
	b.ReportMetric(float64((tWith-tWithout).Nanoseconds())/n, "collapse-ns/op")
}
