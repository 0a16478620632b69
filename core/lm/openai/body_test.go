package openai

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// TestEncodeHeadMatchesEncodingJSON: the hand-written request head is the
// bytes json.Marshal writes, whichever of the two writes it.
func TestEncodeHeadMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	floats := []float64{0, 1, 0.7, 0.1, 1e-7, 1.5e-6, 2e21, 1e20, -3.25, 0.30000000000000004, 5e-324,
		math.MaxFloat64, math.NaN(), math.Inf(-1)}
	strs := []string{"", "gpt-4o-mini", "a<b", "x&y", "quote\"", "back\\", "tab\t", "é", "\n\n", "END", "\u2028", "\xff"}
	for range 20000 {
		cr := chatRequest{}
		if r.IntN(4) > 0 {
			cr.Model = strs[r.IntN(len(strs))]
		}
		if r.IntN(2) == 0 {
			cr.Temperature = &floats[r.IntN(len(floats))]
		}
		if r.IntN(2) == 0 {
			cr.TopP = &floats[r.IntN(len(floats))]
		}
		if r.IntN(2) == 0 {
			n := r.IntN(5000) - 100
			cr.MaxTokens = &n
		}
		if r.IntN(3) == 0 {
			n := r.IntN(8)
			cr.N = &n
		}
		if r.IntN(3) == 0 {
			s := r.Int64() - r.Int64()
			cr.Seed = &s
		}
		for range r.IntN(3) {
			cr.Stop = append(cr.Stop, strs[r.IntN(len(strs))])
		}
		if r.IntN(5) == 0 {
			cr.Stop = []string{}
		}
		if r.IntN(3) == 0 {
			cr.Stream = true
			cr.StreamOptions = &chatStreamOptions{IncludeUsage: r.IntN(2) == 0}
		}
		if r.IntN(6) == 0 {
			cr.ResponseFormat = &chatResponseFormat{Type: "json_object"}
		}
		want, wantErr := json.Marshal(&cr)
		got, gotErr := encodeHead(&cr, 0)
		if (wantErr == nil) != (gotErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("request head of %+v:\ngot  %s (%v)\nwant %s (%v)", cr, got, gotErr, want, wantErr)
		}
	}
}
