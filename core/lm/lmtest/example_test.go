package lmtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/dspex/dspex/core/lm/lmtest"
)

// A test starts the simulator, points an OpenAI-compatible client at
// s.URL(), and scripts the answer it needs.
func ExampleStart() {
	ctx := context.Background()
	s, err := lmtest.Start(ctx, lmtest.Config{
		Seed: 1,
		Script: &lmtest.Script{Rules: []lmtest.Rule{
			{Match: "capital of France", Fields: map[string]any{"answer": "Paris", "confidence": 0.9}},
		}},
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	system := "Your input fields are:\n1. `question` (str): \n" +
		"Your output fields are:\n1. `answer` (str): \n2. `confidence` (float): \n" +
		"All interactions will be structured in the following way, with the appropriate values filled in.\n\n" +
		"[[ ## question ## ]]\n{question}\n\n[[ ## answer ## ]]\n{answer}\n\n" +
		"[[ ## confidence ## ]]\n{confidence}        # note: the value you produce must be a single float value\n\n" +
		"[[ ## completed ## ]]\nIn adhering to this structure, your objective is: \n        Answer the question."
	body, _ := json.Marshal(map[string]any{
		"model": "gpt-4o-mini",
		"messages": []map[string]string{
			{"role": "system", "content": system},
			{"role": "user", "content": "[[ ## question ## ]]\nWhat is the capital of France?"},
		},
	})
	resp, err := http.Post(s.URL()+"/chat/completions", "application/json", strings.NewReader(string(body)))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		panic(err)
	}
	fmt.Println(resp.Header.Get("X-DSPEx-Simulator"))
	fmt.Print(out.Choices[0].Message.Content)
	// Output:
	// true
	// [[ ## answer ## ]]
	// Paris
	//
	// [[ ## confidence ## ]]
	// 0.9
	//
	// [[ ## completed ## ]]
}

func ExampleParseFault() {
	for _, spec := range []string{"429:0.1", "500:first=3", "429:0.2,retry_after=2s", "hang"} {
		f, err := lmtest.ParseFault(spec)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s rate=%g first=%d retry_after=%s\n", f.Kind, f.Rate, f.FirstN, f.RetryAfter)
	}
	// Output:
	// 429 rate=0.1 first=0 retry_after=0s
	// 500 rate=0 first=3 retry_after=0s
	// 429 rate=0.2 first=0 retry_after=2s
	// hang rate=1 first=0 retry_after=0s
}
