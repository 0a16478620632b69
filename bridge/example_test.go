package bridge_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/dspex/dspex/bridge"
	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/event"
)

// A host for the built-in registry: the echo plugin starts on its first
// call, is restarted if it dies, and stops with the host.
func ExampleHost() {
	bus := event.NewBus()
	defer bus.Close()
	host, err := bridge.NewHost(bridge.DefaultConfig(), bridge.Options{Bus: bus})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = host.Shutdown(ctx)
	}()

	p, err := host.ForCapability("echo", "") // an optimizer's override goes in the second argument
	if err != nil {
		log.Fatal(err) // e.g. no interpreter: "set DSPEX_PYTHON ..."
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := pluginv1.NewEchoClient(p.Conn()).Echo(ctx, &pluginv1.EchoRequest{Message: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetMessage())
}
