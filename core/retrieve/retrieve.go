package retrieve

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
)

// DefaultK is how many passages Retrieve returns when NewRetrieve is given
// no positive k, as DSPy's Retrieve(k=3).
const DefaultK = 3

// Fields that Retrieve reads and writes.
const (
	// QueryField is the input holding the query text.
	QueryField = "query"
	// KField is an optional input overriding k for one call, as the k
	// argument of DSPy's Retrieve.forward.
	KField = "k"
	// PassagesField is the output holding the passages' texts, best first.
	PassagesField = "passages"
	// PassageIDsField is the output holding the passages' IDs, in the same
	// order as PassagesField.
	PassageIDsField = "passage_ids"
)

// Searcher finds the k passages best matching a query, best first. Index
// is one; a client of a vector database can be another. Implementations
// used by Retrieve must be safe for concurrent use.
type Searcher interface {
	Search(ctx context.Context, query string, k int) ([]Hit, error)
}

var _ Searcher = (*Index)(nil)

// Retrieve is DSPy's dspy.Retrieve: a module that looks its "query" input
// up in a Searcher and predicts "passages", the texts of the k best
// passages, best first ([]any of strings, as the JSON model holds lists),
// and "passage_ids", their IDs in the same order. It holds no predictor
// and calls no LM itself. Safe for concurrent use when its Searcher is.
type Retrieve struct {
	searcher Searcher
	k        int
}

var _ module.Module = (*Retrieve)(nil)

// NewRetrieve returns a module searching s for k passages per query; k <= 0
// means DefaultK.
func NewRetrieve(s Searcher, k int) *Retrieve {
	if k <= 0 {
		k = DefaultK
	}
	return &Retrieve{searcher: s, k: k}
}

// K returns how many passages a call returns unless its inputs say
// otherwise.
func (r *Retrieve) K() int { return r.k }

// Forward searches for inputs["query"], which must be a string, and
// returns the prediction described on Retrieve. An optional positive
// integer inputs["k"] replaces the module's k for this call. Search errors
// are returned wrapped, so errors.Is still matches lm's sentinels.
func (r *Retrieve) Forward(ctx context.Context, inputs module.Inputs) (*example.Prediction, error) {
	if r.searcher == nil {
		return nil, errors.New("retrieve: forward: no searcher")
	}
	raw, ok := inputs[QueryField]
	if !ok {
		return nil, fmt.Errorf("retrieve: forward: missing input field %q", QueryField)
	}
	query, ok := raw.(string)
	if !ok {
		return nil, fmt.Errorf("retrieve: forward: input field %q is %T, want a string", QueryField, raw)
	}
	k := r.k
	if v, ok := inputs[KField]; ok {
		n, err := positiveInt(v)
		if err != nil {
			return nil, fmt.Errorf("retrieve: forward: input field %q: %w", KField, err)
		}
		k = n
	}
	hits, err := r.searcher.Search(ctx, query, k)
	if err != nil {
		return nil, fmt.Errorf("retrieve: forward: %w", err)
	}
	hits = hits[:min(len(hits), k)]
	passages := make([]any, len(hits))
	ids := make([]any, len(hits))
	for i, h := range hits {
		passages[i] = h.Passage.Text
		ids[i] = h.Passage.ID
	}
	return example.NewPrediction(map[string]any{PassagesField: passages, PassageIDsField: ids}), nil
}

// positiveInt reads a positive whole number given as any Go integer type or
// as an integral float (as JSON decodes numbers).
func positiveInt(v any) (int, error) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case float64:
		if x != math.Trunc(x) || x < 1 || x > math.MaxInt32 {
			return 0, fmt.Errorf("%v is not a positive integer", x)
		}
		n = int64(x)
	default:
		return 0, fmt.Errorf("%T is not an integer", v)
	}
	if n < 1 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%d is not a positive integer", n)
	}
	return int(n), nil
}
