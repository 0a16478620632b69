package serve_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// Any request body gets a JSON answer: 200 when it is an object of exactly
// the inputs (the program then sees only input fields), 400 or 413
// otherwise; never a panic.
func FuzzPredictBody(f *testing.F) {
	for _, s := range []string{
		`{"question": "q"}`, `{"question": "q", "hint": null}`, `{"question": 1e999}`, `{"question": [1, 2.5, {"a": -0}]}`,
		`{"question": "q"} x`, `[]`, `"s"`, `null`, ``, `{`, `{"hint": "h"}`, `{"x": 1}`, strings.Repeat("[", 300),
		`{"question": "` + strings.Repeat("é", 200) + `"}`, "{\"question\": \"\xff\"}",
	} {
		f.Add(s)
	}
	sig := signature.MustParse("question, hint: str | None -> answer")
	prog := funcProgram(func(_ context.Context, in module.Inputs) (*example.Prediction, error) {
		for k := range in {
			if !sig.IsInput(k) {
				panic("the program got a field that is not an input: " + k)
			}
		}
		return example.NewPrediction(map[string]any{"answer": "a"}), nil
	})
	srv, err := serve.New(serve.Config{Program: prog, Signature: sig, MaxBodyBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, serve.PathPredict, strings.NewReader(body)))
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("answer to %q is not a JSON object: %q", body, rec.Body)
		}
	})
}
