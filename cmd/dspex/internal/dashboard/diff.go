package dashboard

import (
	"strconv"
	"strings"
)

// diffLine is one line of a line diff: Op is ' ' (in both), '-' (only in
// the first) or '+' (only in the second).
type diffLine struct {
	Op   string
	Text string
}

// maxDiffLines bounds the lines diffed (the LCS table is their product).
const maxDiffLines = 2000

// lineDiff diffs a and b line by line (longest common subsequence).
func lineDiff(a, b string) []diffLine {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(x) > maxDiffLines {
		x = append(x[:maxDiffLines:maxDiffLines], "[... cut]")
	}
	if len(y) > maxDiffLines {
		y = append(y[:maxDiffLines:maxDiffLines], "[... cut]")
	}
	n, m := len(x), len(y)
	// lcs[i][j]: length of the LCS of x[i:] and y[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []diffLine
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case x[i] == y[j]:
			out = append(out, diffLine{" ", x[i]})
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, diffLine{"-", x[i]})
			i++
		default:
			out = append(out, diffLine{"+", y[j]})
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, diffLine{"-", x[i]})
	}
	for ; j < m; j++ {
		out = append(out, diffLine{"+", y[j]})
	}
	return out
}

// promptText is a candidate's prompt as text: each predictor's
// instructions and demos.
func promptText(preds []predictorView) string {
	var b strings.Builder
	for _, p := range preds {
		b.WriteString("== " + p.Name + " ==\n")
		b.WriteString("Instructions:\n" + p.Instructions + "\n")
		if len(p.Demos) == 0 && p.NDemos > 0 {
			b.WriteString("(" + strconv.Itoa(p.NDemos) + " demos)\n")
		}
		for i, d := range p.Demos {
			b.WriteString("Demo " + strconv.Itoa(i+1) + ":\n")
			for _, f := range d.Fields {
				b.WriteString("  " + f.Name + ": " + f.Value + "\n")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
