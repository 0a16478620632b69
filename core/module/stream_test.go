package module_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/cache"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

type cacheStore struct{ c *cache.Cache }

func (s cacheStore) Get(ctx context.Context, k string) ([]byte, bool) {
	v, _, ok := s.c.Get(ctx, k)
	return v, ok
}
func (s cacheStore) Set(ctx context.Context, k string, v []byte) error { return s.c.Set(ctx, k, v) }

func TestStreamAgainstSimulator(t *testing.T) {
	reasoning := "First we recall that Paris has been the capital of France for centuries, then we answer."
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "capital of France", Fields: map[string]any{"reasoning": reasoning, "answer": "Paris", "confidence": 0.9}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	c, _ := cache.Open(context.Background(), cache.Options{})
	defer c.Close()
	stack := lm.NewStack(client, lm.ExecConfig{Cache: cacheStore{c}})
	sig := signature.MustParse("question -> answer, confidence: float")

	for _, a := range []adapter.Adapter{&adapter.ChatAdapter{}, adapter.JSONAdapter{}} {
		t.Run(a.Name(), func(t *testing.T) {
			ctx := module.WithAdapter(module.WithLM(context.Background(), stack), a)
			cot := module.NewChainOfThought(sig)
			run := func() (map[string]string, []string, int, *module.Chunk) {
				texts := map[string]string{}
				var order []string
				n := 0
				var last module.Chunk
				for ch, err := range cot.Stream(ctx, module.Inputs{"question": "What is the capital of France?"}) {
					if err != nil {
						t.Fatal(err)
					}
					last = ch
					if ch.Prediction != nil {
						continue
					}
					n++
					if len(order) == 0 || order[len(order)-1] != ch.Field {
						order = append(order, ch.Field)
					}
					texts[ch.Field] += ch.Text
				}
				return texts, order, n, &last
			}
			texts, order, n, last := run()
			if last.Prediction == nil {
				t.Fatal("the stream did not end with the prediction")
			}
			pred := last.Prediction
			if strings.Join(order, ",") != "reasoning,answer,confidence" || n < 5 {
				t.Errorf("%d chunks in field order %v", n, order)
			}
			if texts["reasoning"] != reasoning || texts["answer"] != "Paris" || pred.String("answer") != "Paris" {
				t.Errorf("chunks %q / %q, prediction %v", texts["reasoning"], texts["answer"], pred.Map())
			}
			if c, _ := pred.Float("confidence"); c != 0.9 {
				t.Errorf("confidence = %v", c)
			}
			// The same request again comes from the cache: the final prediction at once.
			_, _, n2, last2 := run()
			if n2 != 0 || last2.Prediction == nil || last2.Prediction.String("answer") != "Paris" {
				t.Errorf("cached stream yielded %d chunks before %v", n2, last2.Prediction)
			}
		})
	}
	// The simulator records a request once its handler returns, which can be
	// just after the client has read the end of the stream.
	streamed := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		streamed = 0
		for _, r := range srv.Requests() {
			if r.Stream {
				streamed++
			}
		}
		if streamed >= 2 {
			break
		}
	}
	if streamed != 2 {
		t.Errorf("%d streamed requests reached the simulator, want 2 (one per adapter; the rest cached)", streamed)
	}
}

func TestStreamStopsEarly(t *testing.T) {
	srv, err := lmtest.Start(context.Background(), lmtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	ctx := module.WithLM(context.Background(), client)
	p := module.NewPredict(signature.MustParse("question -> answer"))
	n := 0
	for _, err := range p.Stream(ctx, module.Inputs{"question": "a question whose answer is long"}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Errorf("iterations = %d", n)
	}
	for _, err := range p.Stream(ctx, module.Inputs{}) {
		if err == nil || !strings.Contains(err.Error(), "missing input field") {
			t.Errorf("err = %v", err)
		}
	}
}
