package logging_test

import (
	"context"
	"os"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/logging"
)

func ExampleNew() {
	bus := event.NewBus()
	logger := logging.New(os.Stderr, logging.Options{Level: "debug", JSON: true})
	if err := logger.Attach(bus); err != nil {
		panic(err)
	}
	ctx := event.WithBus(context.Background(), bus)
	ctx, run := event.StartRun(ctx)
	event.Publish(ctx, event.RunStart, run, &event.RunInfo{Name: "run"})
	// ... run programs with ctx ...
	event.Publish(ctx, event.RunEnd, run, &event.RunInfo{Name: "run"})

	bus.Close()    // stop delivering,
	logger.Close() // then log what is left
}
