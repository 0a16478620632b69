package serve_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// Serve a Predict program whose LM is the simulator, ask it one question,
// and shut it down.
func Example() {
	sim, err := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "capital of France", Fields: map[string]any{"answer": "Paris"}},
	}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sim.Close()
	model, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: sim.URL(), APIKeyEnv: "DSPEX_EXAMPLE_NO_KEY"})
	if err != nil {
		fmt.Println(err)
		return
	}
	sig := signature.MustParse("question -> answer")
	srv, err := serve.New(serve.Config{
		Program:     module.NewPredict(sig),
		Signature:   sig,
		BaseContext: func() context.Context { return module.WithLM(context.Background(), model) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	res, err := http.Post("http://"+ln.Addr().String()+serve.PathPredict, "application/json",
		strings.NewReader(`{"question": "What is the capital of France?"}`))
	if err != nil {
		fmt.Println(err)
	} else {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Print(res.StatusCode, " ", string(body))
	}
	stop()
	fmt.Println("serve:", <-served)
	// Output:
	// 200 {"answer": "Paris"}
	// serve: <nil>
}
