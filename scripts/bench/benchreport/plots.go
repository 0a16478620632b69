package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plots draws the report's plots into dir and returns their file names
// by key; a plot whose figures were not measured is left out.
func (r *report) plots(dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, pl := range []struct {
		key  string
		draw func() (*plot.Plot, error)
	}{
		{"overhead", r.plotOverhead},
		{"throughput", r.plotThroughput},
		{"optimizers", r.plotOptimizers},
		{"versus", r.plotVersus},
	} {
		p, err := pl.draw()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pl.key, err)
		}
		if p == nil {
			continue
		}
		name := "bench-" + pl.key + ".png"
		if err := p.Save(7*vg.Inch, 4.2*vg.Inch, filepath.Join(dir, name)); err != nil {
			return nil, err
		}
		out[pl.key] = name
	}
	return out, nil
}

func (r *report) stamp(p *plot.Plot) {
	target := "make bench"
	if r.env.quick {
		target = "make bench-quick"
	}
	p.X.Label.Text += "\n" + r.env.start.Format("2006-01-02") + ", " + r.env.cpu + ", " + strconv.Itoa(r.env.cores) + " cores (" + target + ")"
}

func (r *report) plotOverhead() (*plot.Plot, error) {
	const n = "BenchmarkPredict"
	raw, ok1 := r.mean("predict", n, "raw-ns/op")
	bare, ok2 := r.mean("predict", n, "predict-ns/op")
	stack, ok3 := r.mean("predict", n, "stack-ns/op")
	if !ok1 || !ok2 || !ok3 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Time per call against an instant loopback server"
	p.Y.Label.Text = "µs per call (mean of runs)"
	p.X.Label.Text = ""
	bars, err := plotter.NewBarChart(plotter.Values{raw / 1000, bare / 1000, stack / 1000}, vg.Points(50))
	if err != nil {
		return nil, err
	}
	bars.Color = plotutil.Color(0)
	p.Add(bars)
	p.NominalX("raw HTTP round trip", "Predict, bare client", "Predict, default stack")
	goal := plotter.NewFunction(func(float64) float64 { return 1.25 * raw / 1000 })
	goal.Color = color.RGBA{R: 200, A: 255}
	goal.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(goal)
	p.Legend.Add("goal: 1.25 × raw", goal)
	p.Y.Min, p.Y.Max = 0, max(stack, 1.25*raw)/1000*1.2
	p.Legend.Top, p.Legend.Left = true, true
	r.stamp(p)
	return p, nil
}

func (r *report) plotThroughput() (*plot.Plot, error) {
	series := []struct {
		label, id, bench, metric string
	}{
		{"raw floor (stack's run)", "throughput", "BenchmarkThroughput", "raw-of-ideal"},
		{"default stack", "throughput", "BenchmarkThroughput", "stack-of-ideal"},
		{"raw floor (Evaluate's run)", "evalsweep", "BenchmarkEvaluateSweep", "raw-of-ideal"},
		{"Evaluate, default settings", "evalsweep", "BenchmarkEvaluateSweep", "of-ideal"},
	}
	p := plot.New()
	p.Title.Text = "Fraction of the ideal N·L/C, L = 100 ms"
	p.X.Label.Text = "concurrency C"
	p.Y.Label.Text = "ideal time ÷ measured time"
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, c := range sweepC {
		ticks = append(ticks, plot.Tick{Value: float64(c), Label: strconv.Itoa(c)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = 0, 1.05
	drawn := 0
	for i, s := range series {
		var xys plotter.XYs
		for _, c := range sweepC {
			if v, ok := r.mean(s.id, fmt.Sprintf("%s/c=%d", s.bench, c), s.metric); ok {
				xys = append(xys, plotter.XY{X: float64(c), Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		pts.Shape = plotutil.Shape(i)
		if i%2 == 0 {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l, pts)
		p.Legend.Add(s.label, l, pts)
		drawn++
	}
	if drawn == 0 {
		return nil, nil
	}
	p.Legend.Left = true
	p.Legend.Top = false
	r.stamp(p)
	return p, nil
}

func (r *report) plotOptimizers() (*plot.Plot, error) {
	o := "BenchmarkOptimizers"
	get := func(id, name, m string) float64 { v, _ := r.mean(id, name, m); return v }
	names := []string{"BootstrapFewShot", "random search", "MIPROv2"}
	conc := plotter.Values{get("optimizers", o, "bootstrap-s"), get("optimizers", o, "random-s"), get("mipro", "BenchmarkMIPRO", "inflight-wall-s")}
	seq := plotter.Values{get("optimizers", o, "bootstrap-seq-s"), get("optimizers", o, "random-seq-s"), get("mipro", "BenchmarkMIPRO", "wall-s")}
	dspy := plotter.Values{get("versus", "BenchmarkVersusDSPy", "boot-dspy-s"), 0, get("mipro", "BenchmarkMIPRO", "dspy-wall-s")}
	if sum(conc)+sum(seq) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Optimizers at 50 ms simulated latency"
	p.Y.Label.Text = "wall time, s"
	p.X.Label.Text = ""
	w := vg.Points(28)
	for i, s := range []struct {
		label string
		v     plotter.Values
	}{{"DSPEx, concurrent (defaults)", conc}, {"DSPEx, sequential", seq}, {"DSPy 3.4.1 (not run for random search)", dspy}} {
		bars, err := plotter.NewBarChart(s.v, w)
		if err != nil {
			return nil, err
		}
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(i-1)
		p.Add(bars)
		p.Legend.Add(s.label, bars)
	}
	p.NominalX(names...)
	p.Y.Min, p.Y.Max = 0, max(maxOf(conc), maxOf(seq), maxOf(dspy))*1.45
	p.Legend.Top, p.Legend.Left = true, true
	r.stamp(p)
	return p, nil
}

func maxOf(v plotter.Values) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func sum(v plotter.Values) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

func (r *report) plotVersus() (*plot.Plot, error) {
	rows := r.versusRows()
	var vals plotter.Values
	var names []string
	for _, row := range rows {
		if row.ratio <= 0 {
			continue
		}
		vals = append(vals, row.ratio)
		names = append(names, shortName(row.what))
	}
	if len(vals) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "DSPy 3.4.1's time ÷ DSPEx's (above 1: DSPEx faster)"
	p.Y.Label.Text = "ratio"
	p.X.Label.Text = ""
	bars, err := plotter.NewBarChart(vals, vg.Points(30))
	if err != nil {
		return nil, err
	}
	bars.Color = plotutil.Color(1)
	p.Add(bars)
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Color = color.RGBA{R: 200, A: 255}
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.Legend.Add("parity", one)
	p.Y.Min, p.Y.Max = 0, maxOf(vals)*1.2
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.35
	p.X.Tick.Label.XAlign = -0.9
	r.stamp(p)
	return p, nil
}

// shortName is a row's label on the plot's axis.
func shortName(what string) string {
	for _, s := range []struct{ prefix, name string }{
		{"Predict per call", "Predict"},
		{"cache hit, memory", "cache hit (memory)"},
		{"cache hit, disk", "cache hit (disk)"},
		{"Evaluate", "Evaluate"},
		{"BootstrapFewShot, DSPEx sequential", "Bootstrap (seq.)"},
		{"BootstrapFewShot", "Bootstrap"},
		{"MIPROv2", "MIPROv2"},
	} {
		if len(what) >= len(s.prefix) && what[:len(s.prefix)] == s.prefix {
			return s.name
		}
	}
	return what
}
