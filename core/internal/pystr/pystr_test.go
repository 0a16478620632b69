package pystr

import (
	"encoding/json"
	"os"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The goldens are written by Python itself (testdata/golden/pystr/
// gen_pystr_golden.py).
type golden struct {
	Python  string `json:"python"`
	IsSpace []rune `json:"isspace"`
	Cases   []struct {
		Input            string   `json:"input"`
		Cleandoc         string   `json:"cleandoc"`
		Dedent           string   `json:"dedent"`
		SplitLines       []string `json:"splitlines"`
		Strip            string   `json:"strip"`
		ExpandTabs       string   `json:"expandtabs"`
		InstructionLines []string `json:"instruction_lines"`
	} `json:"cases"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("../../../testdata/golden/pystr/pystr.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestIsSpaceMatchesPython(t *testing.T) {
	g := loadGolden(t)
	want := map[rune]bool{}
	for _, r := range g.IsSpace {
		want[r] = true
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if IsSpace(r) != want[r] {
			t.Errorf("IsSpace(%U) = %v, Python %s says %v", r, IsSpace(r), g.Python, want[r])
		}
	}
}

func TestAgainstPython(t *testing.T) {
	g := loadGolden(t)
	empty := cmpopts.EquateEmpty()
	for _, c := range g.Cases {
		t.Run(c.Input, func(t *testing.T) {
			check := func(what string, got, want any) {
				t.Helper()
				if diff := cmp.Diff(want, got, empty); diff != "" {
					t.Errorf("%s(%q) differs from Python (-python +go):\n%s", what, c.Input, diff)
				}
			}
			check("Cleandoc", Cleandoc(c.Input), c.Cleandoc)
			check("Dedent", Dedent(c.Input), c.Dedent)
			check("SplitLines", SplitLines(c.Input), c.SplitLines)
			check("Strip", Strip(c.Input), c.Strip)
			check("ExpandTabs", ExpandTabs(c.Input), c.ExpandTabs)
			check("SplitLines(Dedent(Cleandoc))", SplitLines(Dedent(Cleandoc(c.Input))), c.InstructionLines)
		})
	}
}
