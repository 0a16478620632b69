package trace_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/trace"
)

// A store records what is published on a bus; a reader (here in the same
// process, usually in another) reads it back.
func Example() {
	dir, err := os.MkdirTemp("", "trace-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "traces.db")
	ctx := context.Background()

	store, err := trace.Open(ctx, path, trace.Options{Retention: trace.Retention{MaxRuns: 100}})
	if err != nil {
		log.Fatal(err)
	}
	bus := event.NewBus()
	if err := store.Attach(bus); err != nil {
		log.Fatal(err)
	}

	// What a program run publishes, in short.
	ctx = event.WithBus(ctx, bus)
	ctx, root := event.StartRun(ctx)
	event.Publish(ctx, event.RunStart, root, &event.RunInfo{Name: "run", Program: "qa.yaml"})
	_, lm := event.StartSpan(ctx)
	call := &event.LMCall{Model: "gpt-4o-mini", Messages: []event.Message{{Role: "user", Content: "2+2?"}}}
	event.Publish(ctx, event.LMStart, lm, call)
	done := *call
	done.Completions, done.PromptTokens, done.CompletionTokens, done.Latency = []string{"4"}, 12, 1, 300*time.Millisecond
	event.Publish(ctx, event.LMEnd, lm, &done)
	event.Publish(ctx, event.RunEnd, root, &event.RunInfo{Name: "run", Program: "qa.yaml"})

	if err := store.Close(); err != nil { // commits what is buffered
		log.Fatal(err)
	}
	bus.Close()

	r, err := trace.OpenReader(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	runs, err := r.Runs(context.Background(), trace.ListOptions{Limit: 10})
	if err != nil {
		log.Fatal(err)
	}
	for _, run := range runs {
		fmt.Println(run.Name, run.Program, run.Status, run.Recorded.Calls, "LM call,", run.Recorded.PromptTokens+run.Recorded.CompletionTokens, "tokens")
	}
	calls, err := r.LMCalls(context.Background(), trace.LMCallQuery{RunID: runs[0].ID})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(calls[0].Messages[0].Content, "->", calls[0].Completions[0])
	// Output:
	// run qa.yaml ok 1 LM call, 13 tokens
	// 2+2? -> 4
}
