package lm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"

	"github.com/sony/gobreaker/v2"
)

// EmbedExecConfig configures the execution layers around an embedding
// endpoint: its own pool, retries and breaker, and a per-text cache.
type EmbedExecConfig struct {
	// Name identifies the endpoint and model; default the model name.
	Name    string
	Pool    PoolConfig
	Retry   RetryConfig
	Breaker BreakerConfig
	// Cache stores one vector per text (EmbeddingCacheKey); nil disables it.
	Cache ResponseStore
	Hooks *Hooks
}

// EmbedStack is an Embedder wrapped in the execution layers: texts already
// embedded come from the cache (and are not sent again), the rest go as one
// Embed call through a pool slot, retries and a breaker. Repeated texts in
// one call are embedded once. Safe for concurrent use.
type EmbedStack struct {
	next  Embedder
	dims  int
	slots *Slots
	retry *Retry
	cb    *gobreaker.CircuitBreaker[[][]float32]
	clock *openClock
	cache ResponseStore
	hooks *Hooks
}

var _ Embedder = (*EmbedStack)(nil)

// NewEmbedStack wraps e.
func NewEmbedStack(e Embedder, cfg EmbedExecConfig) *EmbedStack {
	name := cfg.Name
	if name == "" {
		name = e.EmbeddingModel()
	}
	dims := 0
	if d, ok := e.(interface{ EmbeddingDimensions() int }); ok {
		dims = d.EmbeddingDimensions()
	}
	s := &EmbedStack{
		next:  e,
		dims:  dims,
		slots: NewSlots(cfg.Pool),
		retry: NewRetry(nil, cfg.Retry, cfg.Hooks),
		cache: cfg.Cache,
		hooks: cfg.Hooks,
	}
	if cfg.Breaker.Failures >= 0 {
		st, clock := breakerSettings(name, cfg.Breaker, cfg.Hooks)
		s.cb, s.clock = gobreaker.NewCircuitBreaker[[][]float32](st), clock
	}
	return s
}

// EmbeddingModel returns the wrapped embedder's model.
func (s *EmbedStack) EmbeddingModel() string { return s.next.EmbeddingModel() }

// PoolStats returns the pool's counters.
func (s *EmbedStack) PoolStats() PoolStats { return s.slots.Stats() }

// Embed returns one vector per text, from the cache where it can.
func (s *EmbedStack) Embed(ctx context.Context, texts []string) ([][]float32, Usage, error) {
	out := make([][]float32, len(texts))
	model := s.next.EmbeddingModel()
	var missing []string
	where := map[string][]int{} // text not in the cache → its positions
	for i, t := range texts {
		if idx, ok := where[t]; ok {
			where[t] = append(idx, i)
			continue
		}
		if v, ok := s.lookup(ctx, model, t); ok {
			out[i] = v
			continue
		}
		where[t] = []int{i}
		missing = append(missing, t)
	}
	if len(missing) == 0 {
		return out, Usage{}, nil
	}
	vecs, usage, err := s.call(ctx, missing)
	if err != nil {
		return nil, usage, err
	}
	for j, t := range missing {
		for _, i := range where[t] {
			out[i] = vecs[j]
		}
		s.store(ctx, model, t, vecs[j])
	}
	return out, usage, nil
}

// call sends texts through the pool, retries and breaker.
func (s *EmbedStack) call(ctx context.Context, texts []string) ([][]float32, Usage, error) {
	model := s.next.EmbeddingModel()
	release, _, err := s.slots.acquireFor(ctx, model, s.hooks)
	if err != nil {
		return nil, Usage{}, err
	}
	defer release()
	var total Usage
	for attempt := 1; ; attempt++ {
		vecs, usage, err := s.once(ctx, texts)
		total = total.Add(usage)
		if err == nil {
			return vecs, total, nil
		}
		waitFor, ok := s.retry.shouldRetry(ctx, attempt, err)
		if !ok {
			return nil, total, err
		}
		s.hooks.retry(ctx, model, attempt, err, waitFor)
		if s.retry.sleep(ctx, waitFor) != nil {
			return nil, total, err
		}
	}
}

func (s *EmbedStack) once(ctx context.Context, texts []string) ([][]float32, Usage, error) {
	if s.cb == nil {
		return s.next.Embed(ctx, texts)
	}
	var usage Usage
	vecs, err := s.cb.Execute(func() ([][]float32, error) {
		v, u, err := s.next.Embed(ctx, texts)
		usage = u
		if err != nil && ctx.Err() != nil {
			return nil, &excludedErr{err}
		}
		return v, err
	})
	return vecs, usage, breakerError(s.cb, s.clock, s.next.EmbeddingModel(), err)
}

func (s *EmbedStack) lookup(ctx context.Context, model, text string) ([]float32, bool) {
	if s.cache == nil || cacheModeFrom(ctx) != CacheReadWrite {
		return nil, false
	}
	b, ok := s.cache.Get(ctx, EmbeddingCacheKey(model, s.dims, text))
	if !ok || len(b) == 0 || len(b)%4 != 0 {
		return nil, false
	}
	return float32sFromLE(b), true
}

func (s *EmbedStack) store(ctx context.Context, model, text string, v []float32) {
	if s.cache == nil || cacheModeFrom(ctx) == CacheOff {
		return
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	_ = s.cache.Set(context.WithoutCancel(ctx), EmbeddingCacheKey(model, s.dims, text), b)
}

// embeddingKeyVersion starts every embedding cache key's hashed input, so
// that a change of encoding can never collide with old entries, and so that
// no embedding key equals a key of another kind.
const embeddingKeyVersion = "dspex/embedding/v1"

// EmbeddingCacheKey returns the cache key of one text's vector: the hex
// SHA-256 of a length-prefixed encoding of a version tag, model, dimensions
// (0 for the model's own length) and text, so that no two distinct triples
// share an encoding. The base URL and the API key are never part of it:
// the same model behind another endpoint or key gives the same vectors, and
// keys must not leak into cache files.
func EmbeddingCacheKey(model string, dimensions int, text string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	put := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	put(embeddingKeyVersion)
	put(model)
	h.Write(n[:binary.PutVarint(n[:], int64(dimensions))])
	put(text)
	return hex.EncodeToString(h.Sum(nil))
}

// float32sFromLE reads little-endian float32s (len(b) a multiple of 4), the
// form of base64 vectors and of vectors in the embedding cache.
func float32sFromLE(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
