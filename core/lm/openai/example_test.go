package openai_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/openai"
)

func ExampleNew() {
	// A stand-in for an OpenAI-compatible server such as vLLM or Ollama.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c1","model":"llama3","choices":[{"index":0,`+
			`"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`)
	}))
	defer srv.Close()

	model, err := openai.New(openai.Config{
		Model:     "llama3",
		BaseURL:   srv.URL + "/v1",
		APIKeyEnv: "EXAMPLE_UNSET_KEY", // local servers need no key
		Params:    lm.Params{Temperature: lm.Float(0)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := model.Complete(context.Background(), &lm.Request{Messages: []lm.Message{
		{Role: lm.RoleSystem, Content: "Answer in one word."},
		{Role: lm.RoleUser, Content: "What is the capital of France?"},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Text(), res.Usage.TotalTokens)
	// Output: Paris. 11
}
