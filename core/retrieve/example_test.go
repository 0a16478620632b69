package retrieve_test

import (
	"context"
	"fmt"
	"log"

	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/retrieve"
)

// An index over the simulator's embeddings, searched directly and through
// the Retrieve module.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := lmtest.Start(ctx, lmtest.Config{}) // a real endpoint works the same
	if err != nil {
		log.Fatal(err)
	}
	emb, err := openai.NewEmbedder(openai.EmbedderConfig{
		Model: "text-embedding-3-small", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_EXAMPLE_NO_KEY",
	})
	if err != nil {
		log.Fatal(err)
	}
	ix := retrieve.NewIndex(emb)
	err = ix.Add(ctx,
		retrieve.Passage{ID: "france", Text: "Paris is the capital of France."},
		retrieve.Passage{ID: "everest", Text: "Mount Everest is the highest mountain."},
	)
	if err != nil {
		log.Fatal(err)
	}
	hits, err := ix.Search(ctx, "the highest mountain", 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(hits[0].Passage.ID)

	pred, err := retrieve.NewRetrieve(ix, 1).Forward(ctx, map[string]any{"query": "capital of France"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(pred.Map()["passages"])
	// Output:
	// everest
	// [Paris is the capital of France.]
}
