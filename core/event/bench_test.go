package event

import (
	"context"
	"testing"
)

// BenchmarkPublish measures the publisher's cost of one event: with no bus,
// with a bus and no subscriber, and with 3 block subscribers.
func BenchmarkPublish(b *testing.B) {
	span := Span{RunID: "r", SpanID: "s"}
	payload := &LMCall{Model: "m"}
	b.Run("no-bus", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			Publish(ctx, LMEnd, span, payload)
		}
	})
	b.Run("0-subscribers", func(b *testing.B) {
		ctx := WithBus(context.Background(), NewBus())
		b.ReportAllocs()
		for b.Loop() {
			Publish(ctx, LMEnd, span, payload)
		}
	})
	b.Run("3-subscribers", func(b *testing.B) {
		bus := NewBus()
		for range 3 {
			bus.Subscribe(SubscribeOptions{Buffer: 4096}, func(Event) {})
		}
		ctx := WithBus(context.Background(), bus)
		b.ReportAllocs()
		for b.Loop() {
			Publish(ctx, LMEnd, span, payload)
		}
		b.StopTimer()
		bus.Close()
	})
}
