package retrieve

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/lm"
)

// vecEmbedder is a fake embedder whose vector for a text is the text read
// as space-separated numbers ("1 0 0.5"); texts that are not numbers fail.
// It honours ctx and counts its calls.
type vecEmbedder struct {
	calls atomic.Int32
	err   error // returned by every call when set
}

func (e *vecEmbedder) EmbeddingModel() string { return "vec" }

func (e *vecEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, lm.Usage, error) {
	e.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, lm.Usage{}, err
	}
	if e.err != nil {
		return nil, lm.Usage{}, e.err
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		for _, f := range strings.Fields(t) {
			x, err := strconv.ParseFloat(f, 32)
			if err != nil {
				return nil, lm.Usage{}, fmt.Errorf("vec embedder: text %q: %w", t, err)
			}
			out[i] = append(out[i], float32(x))
		}
	}
	return out, lm.Usage{PromptTokens: len(texts), TotalTokens: len(texts)}, nil
}

// hashEmbedder is a fake embedder giving each text a pseudo-random vector
// of dim components derived from a hash of the text.
type hashEmbedder struct{ dim int }

func (e hashEmbedder) EmbeddingModel() string { return "hash-" + strconv.Itoa(e.dim) }

func (e hashEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, lm.Usage, error) {
	if err := ctx.Err(); err != nil {
		return nil, lm.Usage{}, err
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		h := fnv.New64a()
		h.Write([]byte(t))
		r := rand.New(rand.NewPCG(h.Sum64(), 0))
		v := make([]float32, e.dim)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		out[i] = v
	}
	return out, lm.Usage{}, nil
}

// funcEmbedder returns whatever its function returns.
type funcEmbedder func(texts []string) [][]float32

func (funcEmbedder) EmbeddingModel() string { return "func" }

func (f funcEmbedder) Embed(_ context.Context, texts []string) ([][]float32, lm.Usage, error) {
	return f(texts), lm.Usage{}, nil
}

func mustAdd(t testing.TB, ix *Index, passages ...Passage) {
	t.Helper()
	if err := ix.Add(t.Context(), passages...); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

// hitIDs returns the IDs of hits and their scores rounded to 4 places.
func hitIDs(hits []Hit) ([]string, []float64) {
	ids := make([]string, len(hits))
	scores := make([]float64, len(hits))
	for i, h := range hits {
		ids[i] = h.Passage.ID
		scores[i] = math.Round(float64(h.Score)*1e4) / 1e4
	}
	return ids, scores
}

func TestIndexSearch(t *testing.T) {
	t.Parallel()
	ix := NewIndex(&vecEmbedder{})
	mustAdd(t, ix,
		Passage{ID: "east", Text: "1 0"},
		Passage{ID: "north", Text: "0 1"},
		Passage{ID: "northeast", Text: "3 3"}, // length does not matter
		Passage{ID: "west", Text: "-2 0"},
		Passage{ID: "zero", Text: "0 0"},
		Passage{ID: "east-again", Text: "5 0"}, // ties "east", added later
	)
	tests := []struct {
		name       string
		query      string
		k          int
		wantIDs    []string
		wantScores []float64
	}{
		{"east", "2 0", 3, []string{"east", "east-again", "northeast"}, []float64{1, 1, 0.7071}},
		{"k larger than index", "1 0", 10,
			[]string{"east", "east-again", "northeast", "north", "zero", "west"},
			[]float64{1, 1, 0.7071, 0, 0, -1}},
		{"k of one", "0 7", 1, []string{"north"}, []float64{1}},
		{"mostly north", "1 3", 2, []string{"north", "northeast"}, []float64{0.9487, 0.8944}},
		{"zero query ties everything", "0 0", 6,
			[]string{"east", "north", "northeast", "west", "zero", "east-again"},
			[]float64{0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hits, err := ix.Search(t.Context(), tt.query, tt.k)
			if err != nil {
				t.Fatal(err)
			}
			ids, scores := hitIDs(hits)
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantScores, scores); diff != "" {
				t.Errorf("scores (-want +got):\n%s", diff)
			}
			for _, h := range hits {
				if math.IsNaN(float64(h.Score)) {
					t.Errorf("hit %s has a NaN score", h.Passage.ID)
				}
			}
		})
	}
}

// TestIndexTies checks that equal scores keep insertion order across Add
// calls, whatever k.
func TestIndexTies(t *testing.T) {
	t.Parallel()
	ix := NewIndex(&vecEmbedder{})
	var want []string
	for i := range 20 {
		id := "p" + strconv.Itoa(i)
		mustAdd(t, ix, Passage{ID: id, Text: strconv.Itoa(i%3+1) + " 0"}) // same direction
		want = append(want, id)
	}
	for k := 1; k <= 21; k++ {
		hits, err := ix.Search(t.Context(), "1 0", k)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := hitIDs(hits)
		if diff := cmp.Diff(want[:min(k, len(want))], ids); diff != "" {
			t.Fatalf("k=%d (-want +got):\n%s", k, diff)
		}
	}
}

// TestTopKMatchesSort compares the heap against sorting every score.
func TestTopKMatchesSort(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	const dim = 8
	for trial := range 50 {
		n := 1 + r.IntN(300)
		vecs := make([]float32, 0, n*dim)
		for range n {
			v := make([]float32, dim)
			for j := range v {
				v[j] = float32(r.IntN(3) - 1) // small integers make many ties
			}
			vecs = appendNormalized(vecs, v)
		}
		q := appendNormalized(nil, []float32{1, 0, 1, 0, -1, 0, 1, 1})
		all := make([]candidate, n)
		for row := range n {
			all[row] = candidate{score: dot(q, vecs[row*dim:(row+1)*dim]), row: row}
		}
		slices.SortStableFunc(all, func(a, b candidate) int {
			switch {
			case a.score > b.score:
				return -1
			case a.score < b.score:
				return 1
			}
			return 0
		})
		k := 1 + r.IntN(n+5)
		got, err := topK(t.Context(), q, vecs, dim, k)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(all[:min(k, n)], got, cmp.AllowUnexported(candidate{})); diff != "" {
			t.Fatalf("trial %d, n=%d, k=%d (-sorted +heap):\n%s", trial, n, k, diff)
		}
	}
}

func TestIndexEmptyAndInvalidK(t *testing.T) {
	t.Parallel()
	emb := &vecEmbedder{}
	ix := NewIndex(emb)
	hits, err := ix.Search(t.Context(), "1 0", 3)
	if err != nil || hits == nil || len(hits) != 0 {
		t.Errorf("Search on an empty index = %v, %v; want an empty result", hits, err)
	}
	if n := emb.calls.Load(); n != 0 {
		t.Errorf("the query was embedded %d times on an empty index", n)
	}
	if err := ix.Add(t.Context()); err != nil || ix.Len() != 0 {
		t.Errorf("Add() = %v, Len %d", err, ix.Len())
	}
	mustAdd(t, ix, Passage{ID: "a", Text: "1 0"})
	for _, k := range []int{0, -1} {
		if _, err := ix.Search(t.Context(), "1 0", k); err == nil || !strings.Contains(err.Error(), "want at least 1") {
			t.Errorf("Search with k=%d: err = %v", k, err)
		}
	}
}

func TestIndexErrors(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("embedder down")
	tests := []struct {
		name    string
		emb     lm.Embedder
		setup   []Passage // added first, must succeed
		add     []Passage
		query   string // searched when add is nil
		want    error  // matched with errors.Is, if set
		wantMsg string
	}{
		{name: "dimension mismatch between adds", setup: []Passage{{ID: "a", Text: "1 0 0"}},
			add: []Passage{{ID: "b", Text: "1 0"}}, want: ErrDimension,
			wantMsg: "embedder \"vec\" returned 2-dimensional vectors, index holds 3-dimensional ones"},
		{name: "dimension mismatch within an add", add: []Passage{{ID: "a", Text: "1 0"}, {ID: "b", Text: "1 0 0"}},
			want: ErrDimension, wantMsg: `add passage "b"`},
		{name: "query dimension mismatch", setup: []Passage{{ID: "a", Text: "1 0 0"}},
			query: "1 0", want: ErrDimension, wantMsg: "2-dimensional query vector, index holds 3-dimensional ones"},
		{name: "empty vector", add: []Passage{{ID: "a", Text: ""}}, wantMsg: "empty vector"},
		{name: "embedder error on add", emb: &vecEmbedder{err: sentinel}, add: []Passage{{ID: "a", Text: "1"}},
			want: sentinel, wantMsg: "retrieve: add 1 passages: embed"},
		{name: "embedder error on search", setup: []Passage{{ID: "a", Text: "1 0"}}, query: "north",
			wantMsg: "retrieve: search: embed query"},
		{name: "too few vectors", emb: funcEmbedder(func([]string) [][]float32 { return [][]float32{{1}} }),
			add: []Passage{{ID: "a"}, {ID: "b"}}, wantMsg: "returned 1 vectors"},
		{name: "nan", emb: funcEmbedder(func(texts []string) [][]float32 {
			return [][]float32{{1, float32(math.NaN())}}
		}), add: []Passage{{ID: "a"}}, wantMsg: "component 1 of its vector is NaN"},
		{name: "infinite query", emb: funcEmbedder(func(texts []string) [][]float32 {
			if texts[0] == "q" {
				return [][]float32{{float32(math.Inf(1))}}
			}
			return [][]float32{{1}}
		}), setup: []Passage{{ID: "a"}}, query: "q", wantMsg: "component 0 of the query vector is +Inf"},
		{name: "no embedder", emb: lm.Embedder(nil), add: []Passage{{ID: "a"}}, wantMsg: "no embedder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			emb := tt.emb
			if emb == nil && tt.name != "no embedder" {
				emb = &vecEmbedder{}
			}
			ix := NewIndex(emb)
			if len(tt.setup) > 0 {
				mustAdd(t, ix, tt.setup...)
			}
			var err error
			if tt.add != nil {
				err = ix.Add(t.Context(), tt.add...)
			} else {
				_, err = ix.Search(t.Context(), tt.query, 1)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want it to match %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantMsg)
			}
			if got := ix.Len(); got != len(tt.setup) {
				t.Errorf("Len = %d after a failed call, want %d", got, len(tt.setup))
			}
		})
	}
}

func TestIndexCancelled(t *testing.T) {
	t.Parallel()
	emb := &vecEmbedder{}
	ix := NewIndex(emb)
	mustAdd(t, ix, Passage{ID: "a", Text: "1 0"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := ix.Add(ctx, Passage{ID: "b", Text: "0 1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a cancelled context: err = %v", err)
	}
	if _, err := ix.Search(ctx, "1 0", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Search with a cancelled context: err = %v", err)
	}
	if ix.Len() != 1 {
		t.Errorf("Len = %d", ix.Len())
	}

	// A scan long enough to look at its context stops.
	big := make([]float32, 3*cancelCheckRows)
	if _, err := topK(ctx, []float32{1}, big, 1, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("topK with a cancelled context: err = %v", err)
	}
}

// TestIndexMetaIsolation checks that neither the caller's maps nor the
// hits' maps alias what the index holds.
func TestIndexMetaIsolation(t *testing.T) {
	t.Parallel()
	ix := NewIndex(&vecEmbedder{})
	meta := map[string]any{"title": "East"}
	mustAdd(t, ix, Passage{ID: "a", Text: "1 0", Meta: meta})
	meta["title"] = "changed by caller"
	hits, err := ix.Search(t.Context(), "1 0", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := hits[0].Passage.Meta["title"]; got != "East" {
		t.Fatalf("title = %v after the caller changed its map", got)
	}
	hits[0].Passage.Meta["title"] = "changed by reader"
	hits, _ = ix.Search(t.Context(), "1 0", 1)
	if got := hits[0].Passage.Meta["title"]; got != "East" {
		t.Fatalf("title = %v after a reader changed its hit", got)
	}
}

// TestIndexConcurrent runs Adds and Searches together (meaningful under
// -race): every search sees a consistent index, and every passage lands.
func TestIndexConcurrent(t *testing.T) {
	t.Parallel()
	ix := NewIndex(hashEmbedder{dim: 16})
	mustAdd(t, ix, Passage{ID: "seed", Text: "seed"})
	const writers, perWriter, readers = 4, 50, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := ix.Add(t.Context(), Passage{ID: id, Text: id, Meta: map[string]any{"i": i}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			for i := range 100 {
				hits, err := ix.Search(t.Context(), fmt.Sprintf("q%d-%d", r, i), 5)
				if err != nil {
					t.Error(err)
					return
				}
				if len(hits) == 0 {
					t.Error("no hits from a non-empty index")
					return
				}
				for j := 1; j < len(hits); j++ {
					if hits[j].Score > hits[j-1].Score {
						t.Errorf("hits out of order: %v", hits)
						return
					}
				}
				_ = ix.Len()
			}
		})
	}
	wg.Wait()
	if got, want := ix.Len(), 1+writers*perWriter; got != want {
		t.Errorf("Len = %d, want %d", got, want)
	}
	// Each passage is its own best match.
	hits, err := ix.Search(t.Context(), "w2-17", 1)
	if err != nil {
		t.Fatal(err)
	}
	if hits[0].Passage.ID != "w2-17" || hits[0].Score < 0.9999 {
		t.Errorf("best hit for its own text = %s (%.4f)", hits[0].Passage.ID, hits[0].Score)
	}
}

// BenchmarkSearch measures one query against 10,000 passages of dimension
// 64, including the (fake, cheap) query embedding.
func BenchmarkSearch(b *testing.B) {
	const n, dim, k = 10_000, 64, 10
	ix := NewIndex(hashEmbedder{dim: dim})
	passages := make([]Passage, n)
	for i := range passages {
		passages[i] = Passage{ID: strconv.Itoa(i), Text: "passage " + strconv.Itoa(i)}
	}
	mustAdd(b, ix, passages...)
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		hits, err := ix.Search(ctx, "query "+strconv.Itoa(i%64), k)
		if err != nil || len(hits) != k {
			b.Fatalf("Search = %d hits, %v", len(hits), err)
		}
		i++
	}
}
