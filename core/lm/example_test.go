package lm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/openai"
)

func ExampleError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "20")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}`)
	}))
	defer srv.Close()

	model, err := openai.New(openai.Config{Model: "gpt-4o-mini", BaseURL: srv.URL + "/v1", APIKey: "sk-example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = model.Complete(context.Background(), &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}})
	fmt.Println(errors.Is(err, lm.ErrRateLimited), lm.Retryable(err), lm.RetryAfter(err))
	// Output: true true 20s
}
