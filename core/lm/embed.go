package lm

import "context"

// Embedder turns texts into vectors. Implementations are safe for concurrent
// use, honour ctx, and return one vector per text, in order.
type Embedder interface {
	// EmbeddingModel names the embedding model.
	EmbeddingModel() string
	// Embed returns the vectors of texts and the tokens spent.
	Embed(ctx context.Context, texts []string) ([][]float32, Usage, error)
}
