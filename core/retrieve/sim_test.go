package retrieve_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/retrieve"
)

// simPassages are about distinct topics, so the simulator's bag-of-words
// vectors tell them apart by the words they share with a query.
var simPassages = []retrieve.Passage{
	{ID: "france", Text: "Paris is the capital and largest city of France."},
	{ID: "photosynthesis", Text: "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar."},
	{ID: "everest", Text: "Mount Everest is the highest mountain above sea level."},
	{ID: "python", Text: "Python is a programming language that emphasises readability."},
	{ID: "nile", Text: "The Nile is a major river flowing north through Egypt."},
}

func simEmbedder(t *testing.T, cfg openai.EmbedderConfig) lm.Embedder {
	t.Helper()
	srv, err := lmtest.Start(t.Context(), lmtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg.Model = "sim-embed"
	cfg.BaseURL = srv.URL()
	cfg.APIKeyEnv = "DSPEX_TEST_UNSET_EMBED_KEY"
	emb, err := openai.NewEmbedder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return emb
}

// TestSimulatorRetrieval indexes passages through the simulator's
// embeddings endpoint (in small batches, to cross batch boundaries) and
// retrieves them through the Retrieve module.
func TestSimulatorRetrieval(t *testing.T) {
	t.Parallel()
	ix := retrieve.NewIndex(simEmbedder(t, openai.EmbedderConfig{BatchSize: 2, Dimensions: 256}))
	if err := ix.Add(t.Context(), simPassages...); err != nil {
		t.Fatal(err)
	}
	if ix.Len() != len(simPassages) {
		t.Fatalf("Len = %d", ix.Len())
	}
	r := retrieve.NewRetrieve(ix, 1)
	for query, want := range map[string]string{
		"What is the capital of France?":                   "france",
		"How do plants use sunlight?":                      "photosynthesis",
		"Which mountain is the highest?":                   "everest",
		"Which programming language is readable?":          "python",
		"Which river flows north through Egypt?":           "nile",
		"Paris is the capital and largest city of France.": "france",
	} {
		pred, err := r.Forward(t.Context(), module.Inputs{"query": query})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]any{want}, pred.Map()["passage_ids"]); diff != "" {
			t.Errorf("query %q: passage ids (-want +got):\n%s", query, diff)
		}
	}
	hits, err := ix.Search(t.Context(), "Paris is the capital and largest city of France.", 2)
	if err != nil {
		t.Fatal(err)
	}
	if hits[0].Score < 0.9999 || hits[1].Score >= hits[0].Score {
		t.Errorf("scores = %.4f, %.4f; want the identical text at 1 and the next lower", hits[0].Score, hits[1].Score)
	}
}
