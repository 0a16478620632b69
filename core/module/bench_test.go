package module

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/signature"
)

// instantServer answers every chat completion at once with the same body
// and keeps the last request body, so the raw round trip can send the very
// bytes Predict sends.
type instantServer struct {
	*httptest.Server
	mu   sync.Mutex
	last []byte
}

const instantAnswer = `{"id":"x","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"[[ ## reasoning ## ]]\nTwo plus two is four.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":20,"total_tokens":140}}`

func newInstantServer() *instantServer {
	s := &instantServer{}
	body := []byte(instantAnswer)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.last = b
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	return s
}

// BenchmarkPredict measures the framework's cost per call — ChatAdapter
// formatting, the OpenAI-compatible client and parsing — against a loopback
// server that answers instantly, and beside it the raw HTTP round trip of
// the same request bytes to the same server. It reports predict-ns/op,
// raw-ns/op and their ratio x-raw (goal: at most 1.5); and the same call
// through the default execution layers (lm.NewStack with a zero
// ExecConfig: metering, collapse, pool, retry, breaker; no cache), as
// stack-ns/op and stack-x-raw (goal: at most 1.25).
func BenchmarkPredict(b *testing.B) {
	srv := newInstantServer()
	defer srv.Close()
	model, err := openai.New(openai.Config{Model: "bench", BaseURL: srv.URL + "/v1", Timeout: -1})
	if err != nil {
		b.Fatal(err)
	}
	cot := NewChainOfThought(signature.MustParse("question -> answer: int"))
	ctx := WithLM(context.Background(), model)
	stackCtx := WithLM(context.Background(), lm.NewStack(model, lm.ExecConfig{}))
	inputs := Inputs{"question": "What is two plus two?"}
	if _, err := cot.Forward(ctx, inputs); err != nil {
		b.Fatal(err)
	}
	srv.mu.Lock()
	reqBody := srv.last
	srv.mu.Unlock()

	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	rawCall := func() {
		resp, err := client.Post(srv.URL+"/v1/chat/completions", "application/json", bytes.NewReader(reqBody))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	rawCall()

	// Raw and framework calls alternate, so drift in this machine's speed
	// affects both alike; ns/op is their sum.
	var rawTotal, predictTotal, stackTotal time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		rawCall()
		t1 := time.Now()
		if _, err := cot.Forward(ctx, inputs); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := cot.Forward(stackCtx, inputs); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		rawTotal += t1.Sub(t0)
		predictTotal += t2.Sub(t1)
		stackTotal += t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(predictTotal.Nanoseconds())/n, "predict-ns/op")
	b.ReportMetric(float64(rawTotal.Nanoseconds())/n, "raw-ns/op")
	b.ReportMetric(float64(predictTotal)/float64(rawTotal), "x-raw")
	b.ReportMetric(float64(stackTotal.Nanoseconds())/n, "stack-ns/op")
	b.ReportMetric(float64(stackTotal)/float64(rawTotal), "stack-x-raw")
}
