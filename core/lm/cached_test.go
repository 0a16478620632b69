package lm_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/cache"
	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
)

// store adapts *cache.Cache to lm.ResponseStore, as core/runenv does.
type store struct{ c *cache.Cache }

func (s store) Get(ctx context.Context, k string) ([]byte, bool) {
	v, _, ok := s.c.Get(ctx, k)
	return v, ok
}
func (s store) Set(ctx context.Context, k string, v []byte) error { return s.c.Set(ctx, k, v) }

func openCache(t *testing.T, path string) *cache.Cache {
	t.Helper()
	c, err := cache.Open(context.Background(), cache.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCachedLayer(t *testing.T) {
	srv, client := sim(t, "")
	path := filepath.Join(t.TempDir(), "lm-cache.db")
	c := openCache(t, path)
	m := lm.NewStack(client, lm.ExecConfig{Cache: store{c}})
	ctx := context.Background()

	first, err := m.Complete(ctx, ask("cache me"))
	if err != nil || first.CacheHit {
		t.Fatalf("first call: %v hit=%v", err, first.CacheHit)
	}
	t.Run("memory hit", func(t *testing.T) {
		ctx, st := lm.WithCallStats(ctx)
		hit, err := m.Complete(ctx, ask("cache me"))
		if err != nil || !hit.CacheHit || hit.Text() != first.Text() {
			t.Fatalf("hit=%v err=%v", hit.CacheHit, err)
		}
		if hit.Usage != (lm.Usage{}) || st.Attempts != 0 || st.Cost != (lm.Cost{}) {
			t.Errorf("a hit must cost no tokens: %+v, %+v", hit, st)
		}
		if srv.Stats().Requests != 1 {
			t.Errorf("server saw %d requests", srv.Stats().Requests)
		}
	})
	t.Run("copies are not shared", func(t *testing.T) {
		a, _ := m.Complete(ctx, ask("cache me"))
		a.Choices[0].Text = "changed by a caller"
		b, _ := m.Complete(ctx, ask("cache me"))
		if b.Text() != first.Text() {
			t.Errorf("a caller's change leaked into the cache: %q", b.Text())
		}
	})
	t.Run("bypass", func(t *testing.T) {
		before := srv.Stats().Requests
		res, err := m.Complete(lm.WithCacheMode(ctx, lm.CacheOff), ask("cache me"))
		if err != nil || res.CacheHit || srv.Stats().Requests != before+1 {
			t.Errorf("bypass: hit=%v err=%v requests=%d", res.CacheHit, err, srv.Stats().Requests-before)
		}
		if _, err := m.Complete(lm.WithCacheMode(ctx, lm.CacheOff), ask("never stored")); err != nil {
			t.Fatal(err)
		}
		if res, _ := m.Complete(ctx, ask("never stored")); res.CacheHit {
			t.Error("CacheOff wrote the cache")
		}
	})
	t.Run("rollout id gives a distinct entry", func(t *testing.T) {
		before := srv.Stats().Requests
		r := ask("cache me")
		r.RolloutID = "rollout-1"
		res, err := m.Complete(ctx, r)
		if err != nil || res.CacheHit || srv.Stats().Requests != before+1 {
			t.Fatalf("rollout: hit=%v err=%v", res.CacheHit, err)
		}
		if res, _ := m.Complete(ctx, r); !res.CacheHit {
			t.Error("the same rollout id missed")
		}
	})
	t.Run("disk hit after a restart", func(t *testing.T) {
		c.Close()
		c2 := openCache(t, path)
		defer c2.Close()
		_, client2 := sim(t, "") // a fresh process: new client, new server
		m2 := lm.NewStack(client2, lm.ExecConfig{Cache: store{c2}})
		res, err := m2.Complete(ctx, ask("cache me"))
		if err != nil || !res.CacheHit || res.Text() != first.Text() {
			t.Fatalf("after restart: hit=%v err=%v", res.CacheHit, err)
		}
		if st, _ := c2.Stats(ctx); st.DiskHits != 1 {
			t.Errorf("disk hits = %d", st.DiskHits)
		}
	})
}

func TestCacheKeyIgnoresAPIKeyAndBaseURL(t *testing.T) {
	srv, err := lmtest.Start(context.Background(), lmtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := openCache(t, "")
	defer c.Close()
	a, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKey: "sk-one"})
	// The same server under another spelling of its address, with another key.
	b, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL() + "/", APIKey: "sk-two"})
	if _, err := lm.NewStack(a, lm.ExecConfig{Cache: store{c}}).Complete(context.Background(), ask("q")); err != nil {
		t.Fatal(err)
	}
	res, err := lm.NewStack(b, lm.ExecConfig{Cache: store{c}}).Complete(context.Background(), ask("q"))
	if err != nil || !res.CacheHit {
		t.Fatalf("another API key missed the cache: hit=%v err=%v", res.CacheHit, err)
	}
	// The key changes with anything that changes the answer.
	base := ask("q")
	key := lm.RequestKey("m", base)
	variants := []*lm.Request{ask("q2"), {Messages: base.Messages, Params: lm.Params{Temperature: lm.Float(1)}},
		{Messages: base.Messages, ResponseFormat: &lm.ResponseFormat{Type: "json_object"}}, {Messages: base.Messages, RolloutID: "r"}}
	for i, v := range variants {
		if lm.RequestKey("m", v) == key {
			t.Errorf("variant %d shares the key", i)
		}
	}
	if lm.RequestKey("other-model", base) == key {
		t.Error("model not in the key")
	}
}

func TestEmbedStackCachesPerText(t *testing.T) {
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Faults: []lmtest.Fault{{Kind: lmtest.FaultServerError, FirstN: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := openCache(t, "")
	defer c.Close()
	emb, err := openai.NewEmbedder(openai.EmbedderConfig{Model: "sim-embed", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	s := lm.NewEmbedStack(emb, lm.EmbedExecConfig{Cache: store{c}, Retry: fastRetry(3)})
	ctx := context.Background()
	v1, u1, err := s.Embed(ctx, []string{"alpha", "beta", "alpha"})
	if err != nil {
		t.Fatalf("first embed (after a retried 500): %v", err)
	}
	if len(v1) != 3 || !equal(v1[0], v1[2]) || equal(v1[0], v1[1]) || u1.TotalTokens == 0 {
		t.Fatalf("vectors %d, usage %+v", len(v1), u1)
	}
	before := srv.Stats().Embeddings
	v2, u2, err := s.Embed(ctx, []string{"beta", "gamma", "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	last := reqs[len(reqs)-1]
	if srv.Stats().Embeddings != before+1 || len(last.Input) != 1 || last.Input[0] != "gamma" {
		t.Errorf("cached texts were sent again: %v", last.Input)
	}
	if !equal(v2[0], v1[1]) || !equal(v2[2], v1[0]) || u2.TotalTokens == 0 {
		t.Error("cached vectors differ")
	}
}

func TestEmbedStackBreakerOpens(t *testing.T) {
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Faults: []lmtest.Fault{{Kind: lmtest.FaultServerError, Rate: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	emb, err := openai.NewEmbedder(openai.EmbedderConfig{Model: "sim-embed", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	s := lm.NewEmbedStack(emb, lm.EmbedExecConfig{Name: "sim/embed", Retry: lm.RetryConfig{MaxAttempts: 1},
		Breaker: lm.BreakerConfig{Failures: 1, OpenTimeout: config.Duration(time.Hour)}})
	ctx := context.Background()
	if _, _, err := s.Embed(ctx, []string{"a"}); !errors.Is(err, lm.ErrServer) {
		t.Fatalf("first call: err = %v, want ErrServer", err)
	}
	_, _, err = s.Embed(ctx, []string{"b"})
	if !errors.Is(err, lm.ErrBreakerOpen) || !strings.Contains(err.Error(), "breaker sim/embed is open") {
		t.Fatalf("second call: err = %v, want ErrBreakerOpen naming the breaker", err)
	}
	if n := srv.Stats().Requests; n != 1 {
		t.Errorf("%d requests reached the server; the open breaker should have stopped the second", n)
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A truncated answer (finish_reason "length") is never stored, so that once
// the LM answers in full the full answer is what callers get.
func TestCachedNeverStoresTruncated(t *testing.T) {
	srv, client := sim(t, "", "truncated:first=1")
	m := lm.NewStack(client, lm.ExecConfig{Cache: store{openCache(t, "")}})
	ctx := context.Background()

	cut, err := m.Complete(ctx, ask("tell me everything"))
	if err != nil {
		t.Fatal(err)
	}
	if !cut.Truncated() || cut.Choices[0].FinishReason != lm.FinishLength {
		t.Fatalf("first answer not truncated: %+v", cut.Choices)
	}
	full, err := m.Complete(ctx, ask("tell me everything"))
	if err != nil {
		t.Fatal(err)
	}
	if full.CacheHit || full.Truncated() || srv.Stats().Requests != 2 {
		t.Fatalf("second call: hit=%v truncated=%v requests=%d; want a fresh full answer", full.CacheHit, full.Truncated(), srv.Stats().Requests)
	}
	again, err := m.Complete(ctx, ask("tell me everything"))
	if err != nil || !again.CacheHit || again.Text() != full.Text() {
		t.Fatalf("the full answer was not cached: hit=%v err=%v", again.CacheHit, err)
	}
}

// An entry an older dspex stored for a truncated answer is a miss.
func TestCachedSkipsStoredTruncated(t *testing.T) {
	srv, client := sim(t, "")
	c := openCache(t, "")
	for q, finish := range map[string]string{"old entry": "length", "control": "stop"} {
		entry := `{"choices":[{"Text":"half an ans","FinishReason":"` + finish + `"}]}`
		if err := c.Set(context.Background(), lm.RequestKey(client.Model(), ask(q)), []byte(entry)); err != nil {
			t.Fatal(err)
		}
	}
	m := lm.NewStack(client, lm.ExecConfig{Cache: store{c}})
	if res, err := m.Complete(context.Background(), ask("control")); err != nil || !res.CacheHit {
		t.Fatalf("the control entry is not a hit (err %v): the test stores under the wrong key", err)
	}
	res, err := m.Complete(context.Background(), ask("old entry"))
	if err != nil || res.CacheHit || srv.Stats().Requests != 1 {
		t.Fatalf("hit=%v err=%v requests=%d; want the stored truncated answer skipped", res.CacheHit, err, srv.Stats().Requests)
	}
}

func TestEmbeddingCacheKey(t *testing.T) {
	t.Parallel()
	k := lm.EmbeddingCacheKey("text-embedding-3-small", 256, "hello")
	if len(k) != 64 || strings.Trim(k, "0123456789abcdef") != "" {
		t.Fatalf("key %q is not hex SHA-256", k)
	}
	if k != lm.EmbeddingCacheKey("text-embedding-3-small", 256, "hello") {
		t.Error("key is not deterministic")
	}
	distinct := [][3]any{
		{"text-embedding-3-small", 256, "hello"},
		{"text-embedding-3-large", 256, "hello"},
		{"text-embedding-3-small", 0, "hello"},
		{"text-embedding-3-small", 256, "hello "},
		{"ab", 0, "c"},
		{"a", 0, "bc"},
		{"", 0, ""},
		{"", -1, ""},
	}
	seen := map[string]int{}
	for i, d := range distinct {
		key := lm.EmbeddingCacheKey(d[0].(string), d[1].(int), d[2].(string))
		if j, ok := seen[key]; ok {
			t.Errorf("inputs %v and %v share a key", distinct[j], d)
		}
		seen[key] = i
	}
}
