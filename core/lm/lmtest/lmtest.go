package lmtest

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Option adjusts the Config of a server NewServer starts.
type Option func(*Config)

// WithConfig starts from cfg instead of the zero Config; options after it
// adjust it.
func WithConfig(cfg Config) Option { return func(c *Config) { *c = cfg } }

// WithScript answers the requests its rules match as they say (see Script).
func WithScript(s *Script) Option { return func(c *Config) { c.Script = s } }

// WithDataset answers prompts that ask one of d's questions, correctly or
// not as its skill model decides (see Dataset).
func WithDataset(d *Dataset) Option { return func(c *Config) { c.Dataset = d } }

// WithSeed makes placeholder answers, latency samples and fault choices
// depend on seed.
func WithSeed(seed int64) Option { return func(c *Config) { c.Seed = seed } }

// WithLatency delays every model request (see Latency).
func WithLatency(l Latency) Option { return func(c *Config) { c.Latency = l } }

// WithFaults adds injected failures (see Fault).
func WithFaults(f ...Fault) Option {
	return func(c *Config) { c.Faults = append(slices.Clip(c.Faults), f...) }
}

// WithFineTuneStep sets how long each stage of a simulated fine-tuning
// job lasts (see Config.FineTuneStep).
func WithFineTuneStep(d time.Duration) Option { return func(c *Config) { c.FineTuneStep = d } }

// WithAPIKey requires "Authorization: Bearer key" on every /v1/ request.
func WithAPIKey(key string) Option { return func(c *Config) { c.APIKey = key } }

// NewServer starts a simulator for the test t, as net/http/httptest starts
// a server: on 127.0.0.1 at a free port, configured by opts (the zero
// Config when there are none), and closed by t.Cleanup when the test and
// its subtests end. Point an OpenAI-compatible client at its URL(); its
// Requests() and Stats() say what the code under test sent. A Config that
// does not validate fails the test at once.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var cfg Config
	for _, o := range opts {
		o(&cfg)
	}
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("lmtest: start simulator: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
