// Package retrieve finds passages by meaning: Index, an in-memory
// brute-force cosine-similarity index over passages embedded by any
// lm.Embedder, and Retrieve, the module (DSPy's dspy.Retrieve) that puts the
// passages best matching a query into a program's prediction.
//
// Index suits corpora up to some hundreds of thousands of passages: a search
// scans every vector, which costs about dimension × passages multiply-adds.
// Retrieve takes any Searcher, so a remote vector store can stand in for it.
package retrieve

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"

	"github.com/dspex/dspex/core/lm"
)

// ErrDimension is matched (with errors.Is) by errors about vectors whose
// length differs from the index's.
var ErrDimension = errors.New("retrieve: vector dimensions differ")

// cancelCheckRows is how many rows a search scans between looks at its
// context.
const cancelCheckRows = 8192

// Passage is one retrievable text.
type Passage struct {
	// ID names the passage; the index does not require IDs to be unique.
	ID string
	// Text is what is embedded and what Retrieve returns.
	Text string
	// Meta holds any other fields of the passage. The index keeps a
	// shallow copy; values inside it are treated as immutable.
	Meta map[string]any
}

// Hit is a passage found by a search.
type Hit struct {
	Passage Passage
	// Score is the cosine similarity between the query and the passage,
	// in [-1, 1]; 0 when either vector is all zeros.
	Score float32
}

// Index is an in-memory vector index searched by cosine similarity. Each
// passage's vector is normalized once, when added, so a search is one dot
// product per passage. The zero value is not usable; build one with
// NewIndex. Index is safe for concurrent use: searches run in parallel
// with each other and with Add, and see every passage whose Add returned
// before the search began.
type Index struct {
	emb lm.Embedder

	mu sync.RWMutex
	// dim is the vector length, 0 until the first passage is added.
	dim int
	// vecs holds the normalized vectors, row i (vecs[i*dim:(i+1)*dim])
	// belonging to passages[i]. Both only ever grow by append, and rows
	// once written never change, so a search may scan the slices it read
	// under mu after releasing it.
	vecs     []float32
	passages []Passage
}

// NewIndex returns an empty index whose passages and queries are embedded
// by emb.
func NewIndex(emb lm.Embedder) *Index {
	return &Index{emb: emb}
}

// Len returns the number of passages in the index.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.passages)
}

// Add embeds the passages' texts in one Embed call (the embedder batches
// them) and adds the passages. It adds all of them or none: an embedding
// failure, a vector count that differs from the passage count, a vector
// with a non-finite component, or vectors whose length differs from each
// other's or from the index's (ErrDimension) leave the index unchanged.
// Adding no passages does nothing.
func (ix *Index) Add(ctx context.Context, passages ...Passage) error {
	if len(passages) == 0 {
		return nil
	}
	if ix.emb == nil {
		return errors.New("retrieve: add: index has no embedder")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("retrieve: add %d passages: %w", len(passages), err)
	}
	texts := make([]string, len(passages))
	for i, p := range passages {
		texts[i] = p.Text
	}
	vecs, _, err := ix.emb.Embed(ctx, texts)
	if err != nil {
		return fmt.Errorf("retrieve: add %d passages: embed: %w", len(passages), err)
	}
	if len(vecs) != len(passages) {
		return fmt.Errorf("retrieve: add %d passages: embedder %q returned %d vectors", len(passages), ix.emb.EmbeddingModel(), len(vecs))
	}
	dim := len(vecs[0])
	if dim == 0 {
		return fmt.Errorf("retrieve: add passage %q: embedder %q returned an empty vector", passages[0].ID, ix.emb.EmbeddingModel())
	}
	flat := make([]float32, 0, len(vecs)*dim)
	for i, v := range vecs {
		if len(v) != dim {
			return fmt.Errorf("retrieve: add passage %q: %w: %d-dimensional vector, passage %q has %d",
				passages[i].ID, ErrDimension, len(v), passages[0].ID, dim)
		}
		if j := nonFinite(v); j >= 0 {
			return fmt.Errorf("retrieve: add passage %q: component %d of its vector is %v", passages[i].ID, j, v[j])
		}
		flat = appendNormalized(flat, v)
	}
	stored := make([]Passage, len(passages))
	for i, p := range passages {
		p.Meta = maps.Clone(p.Meta)
		stored[i] = p
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.dim != 0 && ix.dim != dim {
		return fmt.Errorf("retrieve: add %d passages: %w: embedder %q returned %d-dimensional vectors, index holds %d-dimensional ones",
			len(passages), ErrDimension, ix.emb.EmbeddingModel(), dim, ix.dim)
	}
	ix.dim = dim
	ix.vecs = append(ix.vecs, flat...)
	ix.passages = append(ix.passages, stored...)
	return nil
}

// Search embeds query and returns the k passages whose vectors are most
// similar to it by cosine, best first; equal scores keep the order in which
// the passages were added. Fewer than k hits come back when the index holds
// fewer passages, and none (without embedding the query) when it is empty.
// k must be positive. A query vector whose length differs from the index's
// is an ErrDimension error. Hits hold copies of the passages' Meta maps.
func (ix *Index) Search(ctx context.Context, query string, k int) ([]Hit, error) {
	if k <= 0 {
		return nil, fmt.Errorf("retrieve: search: k is %d, want at least 1", k)
	}
	if ix.Len() == 0 {
		return []Hit{}, nil
	}
	if ix.emb == nil {
		return nil, errors.New("retrieve: search: index has no embedder")
	}
	qv, _, err := ix.emb.Embed(ctx, []string{query})
	if err != nil {
		return nil, fmt.Errorf("retrieve: search: embed query: %w", err)
	}
	if len(qv) != 1 {
		return nil, fmt.Errorf("retrieve: search: embedder %q returned %d vectors for one query", ix.emb.EmbeddingModel(), len(qv))
	}
	if j := nonFinite(qv[0]); j >= 0 {
		return nil, fmt.Errorf("retrieve: search: component %d of the query vector is %v", j, qv[0][j])
	}

	ix.mu.RLock()
	dim, vecs, passages := ix.dim, ix.vecs, ix.passages
	ix.mu.RUnlock()
	if len(qv[0]) != dim {
		return nil, fmt.Errorf("retrieve: search: %w: embedder %q returned a %d-dimensional query vector, index holds %d-dimensional ones",
			ErrDimension, ix.emb.EmbeddingModel(), len(qv[0]), dim)
	}
	q := appendNormalized(make([]float32, 0, dim), qv[0])

	top, err := topK(ctx, q, vecs, dim, k)
	if err != nil {
		return nil, fmt.Errorf("retrieve: search: %w", err)
	}
	hits := make([]Hit, len(top))
	for i, c := range top {
		p := passages[c.row]
		p.Meta = maps.Clone(p.Meta)
		// Rounding may carry a score of parallel vectors just past 1.
		hits[i] = Hit{Passage: p, Score: min(max(c.score, -1), 1)}
	}
	return hits, nil
}

// candidate is a scored row.
type candidate struct {
	score float32
	row   int
}

// worse orders candidates: a lower score, or an equal score on a later row.
func worse(a, b candidate) bool {
	return a.score < b.score || (a.score == b.score && a.row > b.row)
}

// topK scans every row of vecs against q and returns the best k, best
// first. It keeps them in a min-heap of size k whose root is the worst
// kept, so the scan costs O(n log k) beyond the dot products.
func topK(ctx context.Context, q, vecs []float32, dim, k int) ([]candidate, error) {
	n := len(vecs) / dim
	h := make([]candidate, 0, min(k, n))
	for row := range n {
		if row%cancelCheckRows == cancelCheckRows-1 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		c := candidate{score: dot(q, vecs[row*dim:(row+1)*dim]), row: row}
		if len(h) < k {
			h = append(h, c)
			siftUp(h, len(h)-1)
			continue
		}
		// Rows come in order, so an equal score never displaces the root.
		if c.score > h[0].score {
			h[0] = c
			siftDown(h, 0)
		}
	}
	slices.SortFunc(h, func(a, b candidate) int {
		switch {
		case worse(b, a):
			return -1
		case worse(a, b):
			return 1
		}
		return 0
	})
	return h, nil
}

func siftUp(h []candidate, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !worse(h[i], h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func siftDown(h []candidate, i int) {
	for {
		least := i
		if l := 2*i + 1; l < len(h) && worse(h[l], h[least]) {
			least = l
		}
		if r := 2*i + 2; r < len(h) && worse(h[r], h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// dot returns the dot product of equally long a and b.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// appendNormalized appends v scaled to unit length; an all-zero v is
// appended as it is, so that it scores 0 against everything.
func appendNormalized(dst, v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return append(dst, v...)
	}
	inv := 1 / math.Sqrt(sum)
	for _, x := range v {
		dst = append(dst, float32(float64(x)*inv))
	}
	return dst
}

// nonFinite returns the index of v's first NaN or infinite component, or -1.
func nonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}
