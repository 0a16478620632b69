package codeact_test

import (
	"context"
	"fmt"
	"log"

	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/tool"
	"github.com/dspex/dspex/plugins/codeact"
)

// A CodeAct agent whose code calls a Go tool. The pool starts the
// interpreter plugin (in the OS sandbox) on first use; the context must
// carry an LM (module.WithLM).
func ExampleNewCodeAct() {
	type args struct {
		Item string `json:"item"`
	}
	price, err := tool.New("price", "Returns the price of one item in euros.", func(_ context.Context, a args) (any, error) {
		return map[string]int{"apple": 3}[a.Item], nil
	})
	if err != nil {
		log.Fatal(err)
	}
	pool, err := codeact.NewPool(codeact.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	agent, err := codeact.NewCodeAct(signature.MustParse("question -> answer: int"), []*tool.Tool{price})
	if err != nil {
		log.Fatal(err)
	}
	ctx := codeact.WithPool(context.Background(), pool) // and module.WithLM(ctx, model)
	pred, err := agent.Forward(ctx, module.Inputs{"question": "What do 7 apples cost?"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(pred.Get("answer"))
}

// One snippet in a session, with what it printed and its value.
func ExamplePool_NewSession() {
	pool, err := codeact.NewPool(codeact.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	s, err := pool.NewSession(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	obs, err := s.Execute(ctx, "print('hello')\n6 * 7")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q %s\n", obs.Stdout, obs.Value)
}
