// Command hello is the smallest Go program on DSPEx: one ChainOfThought
// asked one question through the front door (package dspex), which gives
// the LM its retries, cache, pool and breaker.
//
//	go run ./examples/hello -base-url http://127.0.0.1:8089/v1 -question "What is the capital of France?"
//
// Against `dspex mock-lm --script examples/qa/sim-script.yaml` it answers
// Paris; point -base-url and -model at any OpenAI-compatible server.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dspex/dspex"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

func main() {
	baseURL := flag.String("base-url", os.Getenv("DSPEX_LM_BASE_URL"), "OpenAI-compatible API root (default $DSPEX_LM_BASE_URL)")
	model := flag.String("model", "dspex-sim", "model name")
	question := flag.String("question", "What is the capital of France?", "the question")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *baseURL, *model, *question); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, baseURL, model, question string) error {
	lm, err := dspex.NewLM(baseURL, model)
	if err != nil {
		return err
	}
	defer lm.Close()
	ctx = dspex.WithLM(ctx, lm)

	qa := module.NewChainOfThought(signature.MustParse("question -> answer"))
	pred, err := qa.Forward(ctx, dspex.Inputs{"question": question})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "reasoning: %s\nanswer: %s\n", pred.String("reasoning"), pred.String("answer"))
	return err
}
