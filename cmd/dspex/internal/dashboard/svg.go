package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"strings"

	"github.com/dspex/dspex/core/trace"
)

// Charts are SVG drawn here: numbers only, and labels escaped with
// template.HTMLEscapeString, so that no stored string reaches the markup
// unescaped. Colours and fonts come from the style sheet (classes).

const (
	chartW, chartH = 640, 220
	padL, padR     = 44, 12
	padT, padB     = 12, 28
)

type plot struct {
	b                      strings.Builder
	xmin, xmax, ymin, ymax float64
}

func newPlot(title string, xmin, xmax, ymin, ymax float64) *plot {
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	p := &plot{xmin: xmin, xmax: xmax, ymin: ymin, ymax: ymax}
	fmt.Fprintf(&p.b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" preserveAspectRatio="xMidYMid meet">`,
		chartW, chartH, template.HTMLEscapeString(title))
	fmt.Fprintf(&p.b, `<title>%s</title>`, template.HTMLEscapeString(title))
	fmt.Fprintf(&p.b, `<rect class="frame" x="%d" y="%d" width="%d" height="%d"/>`, padL, padT, chartW-padL-padR, chartH-padT-padB)
	return p
}

func (p *plot) x(v float64) float64 {
	return padL + (v-p.xmin)/(p.xmax-p.xmin)*float64(chartW-padL-padR)
}

func (p *plot) y(v float64) float64 {
	return float64(chartH-padB) - (v-p.ymin)/(p.ymax-p.ymin)*float64(chartH-padT-padB)
}

// axes writes tick labels: n ticks on each axis, formatted by fx and fy.
func (p *plot) axes(fx, fy func(float64) string, xlabel string) {
	for i := 0; i <= 4; i++ {
		yv := p.ymin + float64(i)/4*(p.ymax-p.ymin)
		y := p.y(yv)
		fmt.Fprintf(&p.b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(&p.b, `<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-4, y+4, template.HTMLEscapeString(fy(yv)))
	}
	for i := 0; i <= 4; i++ {
		xv := p.xmin + float64(i)/4*(p.xmax-p.xmin)
		fmt.Fprintf(&p.b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`, p.x(xv), chartH-padB+14, template.HTMLEscapeString(fx(xv)))
	}
	fmt.Fprintf(&p.b, `<text class="tick" x="%d" y="%d" text-anchor="end">%s</text>`, chartW-padR, chartH-2, template.HTMLEscapeString(xlabel))
}

func (p *plot) html() template.HTML {
	p.b.WriteString(`</svg>`)
	return template.HTML(p.b.String()) //nolint:gosec // numbers and escaped labels only
}

func empty(msg string) template.HTML {
	return template.HTML(`<p class="muted">` + template.HTMLEscapeString(msg) + `</p>`) //nolint:gosec // escaped
}

// scoreChart plots each evaluated trial's score (hollow: minibatch) and
// the best full score so far as a step line.
func scoreChart(trials []trialView) template.HTML {
	if len(trials) == 0 {
		return empty("No trial has been scored yet.")
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, t := range trials {
		lo, hi = min(lo, t.Score), max(hi, t.Score)
	}
	lo, hi = min(lo, 0), max(hi, 1)
	if hi-lo > 1.5 { // not a 0..1 score: frame the data
		lo, hi = math.Floor(lo), math.Ceil(hi)
	}
	p := newPlot("Score per trial, with the best so far", 1, float64(max(len(trials), 2)), lo, hi)
	p.axes(func(v float64) string { return fmt.Sprintf("%.0f", v) }, func(v float64) string { return fmt.Sprintf("%.2f", v) }, "trial")
	var best []string
	cur := math.Inf(-1)
	for _, t := range trials {
		if !t.Minibatch && t.Score > cur {
			if !math.IsInf(cur, -1) {
				best = append(best, fmt.Sprintf("%.1f,%.1f", p.x(float64(t.N)), p.y(cur)))
			}
			cur = t.Score
		}
		if !math.IsInf(cur, -1) {
			best = append(best, fmt.Sprintf("%.1f,%.1f", p.x(float64(t.N)), p.y(cur)))
		}
	}
	if len(best) > 0 {
		fmt.Fprintf(&p.b, `<polyline class="best" points="%s"/>`, strings.Join(best, " "))
	}
	for _, t := range trials {
		cls := "pt"
		if t.Minibatch {
			cls = "pt mini"
		}
		fmt.Fprintf(&p.b, `<circle class="%s" cx="%.1f" cy="%.1f" r="4"><title>trial %d: %s%s</title></circle>`,
			cls, p.x(float64(t.N)), p.y(t.Score), t.Trial, template.HTMLEscapeString(t.ScoreText), map[bool]string{true: " (minibatch)"}[t.Minibatch])
	}
	return p.html()
}

// latencyChart is a histogram of LM call latencies.
func latencyChart(lat []float64) template.HTML {
	if len(lat) == 0 {
		return empty("No LM call has answered from the LM yet (cache hits are left out).")
	}
	hi := 0.0
	for _, l := range lat {
		hi = max(hi, l)
	}
	const bins = 20
	width := max(hi/bins, 1e-9)
	counts := make([]int, bins)
	for _, l := range lat {
		counts[min(int(l/width), bins-1)]++
	}
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	p := newPlot("LM call latency distribution", 0, hi, 0, float64(top))
	p.axes(func(v float64) string { return fmt.Sprintf("%.0f", v) }, func(v float64) string { return fmt.Sprintf("%.0f", v) }, "ms")
	for i, c := range counts {
		if c == 0 {
			continue
		}
		x0, x1 := p.x(float64(i)*width), p.x(float64(i+1)*width)
		y := p.y(float64(c))
		fmt.Fprintf(&p.b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%.0f–%.0f ms: %d calls</title></rect>`,
			x0+1, y, max(x1-x0-2, 1), float64(chartH-padB)-y, float64(i)*width, float64(i+1)*width, c)
	}
	return p.html()
}

// tokenChart plots cumulative tokens over the run's time, calls in start
// order.
func tokenChart(calls []trace.LMCall) template.HTML {
	if len(calls) == 0 {
		return empty("No LM call yet.")
	}
	t0 := calls[0].CreatedAt
	end := calls[len(calls)-1].CreatedAt.Sub(t0).Seconds()
	total := 0
	for _, c := range calls {
		total += c.TotalTokens
	}
	p := newPlot("Tokens used over time", 0, max(end, 1), 0, float64(max(total, 1)))
	p.axes(func(v float64) string {
		if end < 10 {
			return fmt.Sprintf("%.1fs", v)
		}
		return fmt.Sprintf("%.0fs", v)
	}, func(v float64) string { return fmt.Sprintf("%.0f", v) }, "time")
	pts := make([]string, 0, len(calls)+1)
	pts = append(pts, fmt.Sprintf("%.1f,%.1f", p.x(0), p.y(0)))
	sum := 0
	step := max(len(calls)/400, 1) // at most a few hundred points
	for i, c := range calls {
		sum += c.TotalTokens
		if i%step == 0 || i == len(calls)-1 {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", p.x(c.CreatedAt.Sub(t0).Seconds()), p.y(float64(sum))))
		}
	}
	fmt.Fprintf(&p.b, `<polyline class="line" points="%s"/>`, strings.Join(pts, " "))
	return p.html()
}
