package telemetry_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/telemetry"
)

func ExampleFromEnv() {
	ctx := context.Background()
	bus := event.NewBus()
	exp, on, err := telemetry.FromEnv(ctx) // off unless OTEL_* asks for export
	if err != nil {
		log.Fatal(err)
	}
	if on {
		if err := exp.Attach(bus); err != nil {
			log.Fatal(err)
		}
		defer exp.Close(ctx) // after bus.Close: flushes
	}
	defer bus.Close()
	// ... run programs with event.WithBus(ctx, bus) ...
}

func ExampleNewExporter() {
	ctx := context.Background()
	mem := tracetest.NewInMemoryExporter()
	exp, err := telemetry.NewExporter(ctx, telemetry.Options{SpanExporter: mem})
	if err != nil {
		log.Fatal(err)
	}
	bus := event.NewBus()
	if err := exp.Attach(bus); err != nil {
		log.Fatal(err)
	}

	runCtx, run := event.StartRun(event.WithBus(ctx, bus))
	event.Publish(runCtx, event.RunStart, run, &event.RunInfo{Name: "run"})
	_, call := event.StartSpan(runCtx)
	event.Publish(runCtx, event.LMStart, call, &event.LMCall{Model: "gpt-4o-mini"})
	event.Publish(runCtx, event.LMEnd, call, &event.LMCall{Model: "gpt-4o-mini", PromptTokens: 12, Latency: time.Millisecond})
	event.Publish(runCtx, event.RunEnd, run, &event.RunInfo{Name: "run"})

	bus.Close() // handles what is buffered
	if err := exp.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	for _, s := range mem.GetSpans() {
		fmt.Println(s.Name)
	}
	if err := exp.Close(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// chat gpt-4o-mini
	// dspex.run run
}
