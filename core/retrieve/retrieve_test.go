package retrieve

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
)

// searcherFunc adapts a function to Searcher.
type searcherFunc func(ctx context.Context, query string, k int) ([]Hit, error)

func (f searcherFunc) Search(ctx context.Context, query string, k int) ([]Hit, error) {
	return f(ctx, query, k)
}

func TestRetrieveForward(t *testing.T) {
	t.Parallel()
	ix := NewIndex(&vecEmbedder{})
	mustAdd(t, ix,
		Passage{ID: "east", Text: "1 0"},
		Passage{ID: "north", Text: "0 1"},
		Passage{ID: "northeast", Text: "1 1"},
		Passage{ID: "west", Text: "-1 0"},
	)
	tests := []struct {
		name    string
		k       int
		inputs  module.Inputs
		want    map[string]any
		wantErr string
	}{
		{name: "default k", inputs: module.Inputs{"query": "1 0.1"}, want: map[string]any{
			"passages":    []any{"1 0", "1 1", "0 1"},
			"passage_ids": []any{"east", "northeast", "north"},
		}},
		{name: "k", k: 1, inputs: module.Inputs{"query": "0 1"}, want: map[string]any{
			"passages": []any{"0 1"}, "passage_ids": []any{"north"},
		}},
		{name: "k larger than index", k: 9, inputs: module.Inputs{"query": "-1 0"}, want: map[string]any{
			"passages":    []any{"-1 0", "0 1", "1 1", "1 0"},
			"passage_ids": []any{"west", "north", "northeast", "east"},
		}},
		{name: "k input", k: 1, inputs: module.Inputs{"query": "1 0", "k": 2}, want: map[string]any{
			"passages": []any{"1 0", "1 1"}, "passage_ids": []any{"east", "northeast"},
		}},
		{name: "k input from json", inputs: module.Inputs{"query": "1 0", "k": float64(1)}, want: map[string]any{
			"passages": []any{"1 0"}, "passage_ids": []any{"east"},
		}},
		{name: "missing query", inputs: module.Inputs{"question": "1 0"}, wantErr: `missing input field "query"`},
		{name: "query not a string", inputs: module.Inputs{"query": []string{"1 0"}}, wantErr: `input field "query" is []string, want a string`},
		{name: "k zero", inputs: module.Inputs{"query": "1 0", "k": 0}, wantErr: `input field "k": 0 is not a positive integer`},
		{name: "k fraction", inputs: module.Inputs{"query": "1 0", "k": 1.5}, wantErr: `1.5 is not a positive integer`},
		{name: "k string", inputs: module.Inputs{"query": "1 0", "k": "2"}, wantErr: `string is not an integer`},
		{name: "search fails", inputs: module.Inputs{"query": "not numbers"}, wantErr: "retrieve: forward: retrieve: search: embed query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewRetrieve(ix, tt.k)
			pred, err := r.Forward(t.Context(), tt.inputs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, pred.Map()); diff != "" {
				t.Errorf("prediction (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRetrieveDefaultK(t *testing.T) {
	t.Parallel()
	for _, k := range []int{0, -4} {
		if got := NewRetrieve(nil, k).K(); got != DefaultK {
			t.Errorf("NewRetrieve(nil, %d).K() = %d, want %d", k, got, DefaultK)
		}
	}
	if got := NewRetrieve(nil, 7).K(); got != 7 {
		t.Errorf("K = %d, want 7", got)
	}
	if _, err := NewRetrieve(nil, 1).Forward(t.Context(), module.Inputs{"query": "q"}); err == nil {
		t.Error("Forward with no searcher succeeded")
	}
}

// TestRetrieveSearcher checks what Retrieve asks of any Searcher: the
// query and k pass through, extra hits are cut, and errors keep their kind.
func TestRetrieveSearcher(t *testing.T) {
	t.Parallel()
	var gotQuery string
	var gotK int
	s := searcherFunc(func(ctx context.Context, query string, k int) ([]Hit, error) {
		gotQuery, gotK = query, k
		if query == "fail" {
			return nil, &lm.Error{Kind: lm.ErrRateLimited}
		}
		return []Hit{{Passage: Passage{ID: "1", Text: "one"}}, {Passage: Passage{ID: "2", Text: "two"}}, {Passage: Passage{ID: "3", Text: "three"}}}, nil
	})
	r := NewRetrieve(s, 2)
	pred, err := r.Forward(t.Context(), module.Inputs{"query": "what"})
	if err != nil {
		t.Fatal(err)
	}
	if gotQuery != "what" || gotK != 2 {
		t.Errorf("Search(%q, %d), want (\"what\", 2)", gotQuery, gotK)
	}
	if diff := cmp.Diff([]any{"one", "two"}, pred.Map()["passages"]); diff != "" {
		t.Errorf("passages (-want +got):\n%s", diff)
	}
	if _, err := r.Forward(t.Context(), module.Inputs{"query": "fail"}); !errors.Is(err, lm.ErrRateLimited) {
		t.Errorf("err = %v, want it to match lm.ErrRateLimited", err)
	}
}
