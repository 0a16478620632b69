package module_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
)

// The expected values are DSPy 3.4.1's normalize_text on the same input.
func TestNormalizeText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"The,  Eiffel  Tower!", "eiffel tower"},
		{"An apple a day", "apple day"},
		{"théâtre", "\u0301 \u0302tre"}, // NFD splits the accents off, leaving "the" and "a" as words
		{"a", ""},
		{"", ""},
		{"  the  ", ""},
		{"Hello_World the_end", "helloworld theend"},
		{"It's 3.14 — π!", "its 314 — π"},
		{"ÀB  c\u2003d", "\u0300b c d"},
		{"x\u00a0y", "x y"},
		{"the-an-a", "theana"},
		{"ﬁ LIGATURE", "ﬁ ligature"},
		{"İstanbul", "i\u0307stanbul"},
		{"A.B.C.", "abc"},
		{"tab\there\nnew", "tab here new"},
		{"\x1cx\x1fy", "x y"},
		{"Ωmega", "ωmega"},
		{"a\u0301 the\u0301x", "\u0301 \u0301x"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			if got := module.NormalizeText(c.in); got != c.want {
				t.Errorf("NormalizeText(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestMajority(t *testing.T) {
	comps := func(answers ...any) []map[string]any {
		out := make([]map[string]any, len(answers))
		for i, a := range answers {
			out[i] = map[string]any{"answer": a, "i": i}
		}
		return out
	}
	identity := func(s string) string { return s }
	cases := []struct {
		name      string
		comps     []map[string]any
		normalize func(string) string
		want      int // index of the completion chosen
	}{
		{"plain majority", comps("x", "y", "y"), nil, 1},
		{"tie goes to the value seen first", comps("y", "x", "x", "y"), nil, 0},
		{"tie with a later first occurrence", comps("z", "x", "y", "x", "y"), nil, 1},
		{"normalization merges spellings", comps("Paris", "London", "the paris!", "london", "PARIS."), nil, 0},
		{"values normalizing to empty do not vote", comps("the", "a", "b"), nil, 2},
		{"all empty: everything votes, first wins", comps("the", "a", "!"), nil, 0},
		{"identity normalize keeps case apart", comps("Paris", "paris", "paris"), identity, 1},
		{"non-string values vote as str()", comps(int64(3), 3.0, int64(3)), nil, 0},
		{"single completion", comps("only"), nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := module.Majority(c.comps, "answer", c.normalize)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.comps[c.want], got.Map()); diff != "" {
				t.Errorf("chose %v, want completion %d (-want +got):\n%s", got.Map(), c.want, diff)
			}
			if len(got.Completions) != 1 {
				t.Errorf("completions = %d, want 1", len(got.Completions))
			}
		})
	}
}

func TestMajorityInputs(t *testing.T) {
	t.Run("prediction with completions", func(t *testing.T) {
		pred := example.NewPrediction(
			map[string]any{"answer": "4"},
			map[string]any{"answer": "five"},
			map[string]any{"answer": "Five!"},
		)
		pred.Usage = lm.Usage{PromptTokens: 10, CompletionTokens: 3, TotalTokens: 13}
		got, err := module.Majority(pred, "answer", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.String("answer") != "five" || got.Usage != pred.Usage {
			t.Errorf("got %v (usage %+v)", got.Map(), got.Usage)
		}
	})
	t.Run("several predictions", func(t *testing.T) {
		preds := []*example.Prediction{
			example.NewPrediction(map[string]any{"answer": "x"}),
			example.NewPrediction(map[string]any{"answer": "y"}),
			example.NewPrediction(map[string]any{"answer": "Y"}),
		}
		for _, p := range preds {
			p.Usage = lm.Usage{TotalTokens: 5}
		}
		got, err := module.Majority(preds, "answer", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.String("answer") != "y" || got.Usage.TotalTokens != 15 {
			t.Errorf("got %v (usage %+v)", got.Map(), got.Usage)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if _, err := module.Majority([]map[string]any{{"answer": "x"}, {"other": "y"}}, "answer", nil); err == nil {
			t.Error("a completion without the field: no error")
		}
		if _, err := module.Majority([]map[string]any{{"answer": "x"}}, "", nil); err == nil {
			t.Error("no field: no error")
		}
		if _, err := module.Majority([]*example.Prediction{}, "answer", nil); err == nil {
			t.Error("no completions: no error")
		}
		if _, err := module.Majority((*example.Prediction)(nil), "answer", nil); err == nil {
			t.Error("nil prediction: no error")
		}
	})
}

func ExampleMajority() {
	completions := []map[string]any{
		{"answer": "Paris"},
		{"answer": "Lyon"},
		{"answer": "the city of Lyon"},
		{"answer": "lyon."},
	}
	pred, err := module.Majority(completions, "answer", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pred.String("answer"))
	// Output: Lyon
}
