package trace

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
)

// BenchmarkWriteSpans measures the store's sustained write rate: each
// iteration publishes one module call holding one LM call (module start,
// LM start, LM end, module end: 2 spans and 1 LM call row) through a real
// bus, with payloads the size of a small ChainOfThought call. The timing
// includes Close, so the final flush is counted; spans/s is the figure to
// read.
//
//	go test -run '^$' -bench BenchmarkWriteSpans -benchtime 20000x ./core/trace/
func BenchmarkWriteSpans(b *testing.B) {
	for _, batch := range []int{16, DefaultBatchSize} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := Open(context.Background(), tempDB(b), Options{BatchSize: batch})
			if err != nil {
				b.Fatal(err)
			}
			bus := event.NewBus()
			defer bus.Close()
			if err := s.Attach(bus); err != nil {
				b.Fatal(err)
			}
			inputs := map[string]any{"question": "What is the capital of the country whose flag is red with a white cross?"}
			outputs := map[string]any{"reasoning": strings.Repeat("The flag described is Switzerland's. ", 4), "answer": "Bern"}
			req := &event.LMCall{Model: "gpt-4o-mini", Adapter: "ChatAdapter", Params: map[string]any{"temperature": 0.0, "max_tokens": 1000},
				Messages: []event.Message{
					{Role: "system", Content: strings.Repeat("Your input fields are: 1. `question` (str). Your output fields are ... ", 8)},
					{Role: "user", Content: "[[ ## question ## ]]\n" + inputs["question"].(string) + "\n\nRespond with the corresponding output fields."},
				}}
			resp := *req
			resp.Completions = []string{"[[ ## reasoning ## ]]\n" + outputs["reasoning"].(string) + "\n\n[[ ## answer ## ]]\nBern\n\n[[ ## completed ## ]]"}
			resp.PromptTokens, resp.CompletionTokens, resp.CostUSD, resp.CostKnown = 180, 45, 0.0000540, true
			resp.Latency, resp.Attempts = 800*time.Millisecond, 1
			start := &event.ModuleCall{Module: "ChainOfThought", Signature: "question -> reasoning, answer", Inputs: inputs}
			end := *start
			end.Outputs, end.Duration = outputs, 810*time.Millisecond
			run := event.NewID()

			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				m, l := fmt.Sprintf("m%d", i), fmt.Sprintf("l%d", i)
				now := time.Now()
				bus.Publish(event.Event{Kind: event.ModuleStart, Time: now, RunID: run, SpanID: m, Data: start})
				bus.Publish(event.Event{Kind: event.LMStart, Time: now, RunID: run, SpanID: l, ParentID: m, Data: req})
				bus.Publish(event.Event{Kind: event.LMEnd, Time: now, RunID: run, SpanID: l, ParentID: m, Data: &resp})
				bus.Publish(event.Event{Kind: event.ModuleEnd, Time: now, RunID: run, SpanID: m, Data: &end})
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if st := s.Stats(); st.Events != int64(4*b.N) || st.Dropped != 0 {
				b.Fatalf("stats %+v; want %d events", st, 4*b.N)
			}
			b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}
