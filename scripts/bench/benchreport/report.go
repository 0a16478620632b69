package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// report holds one run's outcome and renders it.
type report struct {
	env  runEnv
	runs []*stepRun
	byID map[string]*stepRun
}

func newReport(env runEnv, runs []*stepRun) *report {
	r := &report{env: env, runs: runs, byID: map[string]*stepRun{}}
	for _, s := range runs {
		r.byID[s.id] = s
	}
	return r
}

// vals is every value of metric reported by benchmark name in step id
// (several with -count).
func (r *report) vals(id, name, metric string) []float64 {
	s := r.byID[id]
	if s == nil {
		return nil
	}
	var out []float64
	for _, res := range s.parsed.results {
		if res.name == name {
			if v, ok := res.metrics[metric]; ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// mean is the mean of vals, ok false when there are none.
func (r *report) mean(id, name, metric string) (float64, bool) {
	v := r.vals(id, name, metric)
	if len(v) == 0 {
		return 0, false
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v)), true
}

// why says why step id has no figures: not run in this mode, failed or
// skipped; "" when it has results.
func (r *report) why(id string) string {
	s := r.byID[id]
	switch {
	case s == nil:
		if r.env.quick {
			return "not part of `make bench-quick`; `make bench` runs it"
		}
		return "not run"
	case s.err != nil && len(s.parsed.results) == 0:
		return "the benchmark failed: " + firstLine(s.err.Error()) + " (output in the raw file)"
	case len(s.parsed.results) == 0 && len(s.parsed.skips) > 0:
		return "skipped: " + s.parsed.skips[0].reason
	case len(s.parsed.results) == 0:
		return "no results"
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// num formats v with d decimals and thousands separators.
func num(v float64, d int) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := fmt.Sprintf("%.*f", d, math.Abs(v))
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String()
	if frac != "" {
		out += "." + frac
	}
	if v < 0 {
		out = "−" + out
	}
	return out
}

// cell is num of the mean of a metric, or "–".
func (r *report) cell(id, name, metric string, d int) string {
	v, ok := r.mean(id, name, metric)
	if !ok {
		return "–"
	}
	return num(v, d)
}

// span is "a–b" over the values of a metric (one value: itself).
func (r *report) span(id, name, metric string, d int) string {
	v := r.vals(id, name, metric)
	if len(v) == 0 {
		return "–"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if num(lo, d) == num(hi, d) {
		return num(lo, d)
	}
	return num(lo, d) + "–" + num(hi, d)
}

var sweepC = []int{1, 8, 64, 256, 1024}

// goal is one line of the goals table.
type goal struct {
	what, figure string
	met          *bool // nil: not measured
	miss         string
}

func yes(b bool) *bool { return &b }

func (r *report) goals() []goal {
	var g []goal
	// Overhead.
	if v := r.vals("predict", "BenchmarkPredict", "stack-x-raw"); len(v) > 0 {
		worst := slices.Max(v)
		mean, _ := r.mean("predict", "BenchmarkPredict", "stack-x-raw")
		x := goal{what: "Predict overhead through the default stack ≤ 1.25× the raw round trip, in every run",
			figure: fmt.Sprintf("%s× over %d runs, mean %s× (bare client %s×)", r.span("predict", "BenchmarkPredict", "stack-x-raw", 3), len(v), num(mean, 3), r.span("predict", "BenchmarkPredict", "x-raw", 3)),
			met:    yes(worst <= 1.25)}
		if worst > 1.25 {
			above := 0
			for _, x := range v {
				if x > 1.25 {
					above++
				}
			}
			x.miss = fmt.Sprintf("%d of %d runs above 1.25, the worst by %s×", above, len(v), num(worst-1.25, 3))
		}
		g = append(g, x)
	} else {
		g = append(g, goal{what: "Predict overhead ≤ 1.25× raw", figure: r.why("predict")})
	}
	// Throughput.
	type pt struct {
		what string
		v    float64
	}
	var pts []pt
	for _, c := range sweepC {
		if v, ok := r.mean("throughput", fmt.Sprintf("BenchmarkThroughput/c=%d", c), "stack-x-raw"); ok {
			pts = append(pts, pt{fmt.Sprintf("stack at C = %d", c), v})
		}
		if v, ok := r.mean("evalsweep", fmt.Sprintf("BenchmarkEvaluateSweep/c=%d", c), "x-raw"); ok {
			pts = append(pts, pt{fmt.Sprintf("Evaluate at C = %d", c), v})
		}
	}
	if len(pts) > 0 {
		worst := slices.MinFunc(pts, func(a, b pt) int {
			if a.v < b.v {
				return -1
			} else if a.v > b.v {
				return 1
			}
			return 0
		})
		x := goal{what: "throughput ≥ 0.95 of the raw floor up to C = 1024, default settings", figure: fmt.Sprintf("lowest: %s× (%s)", num(worst.v, 3), worst.what), met: yes(worst.v >= 0.95)}
		if worst.v < 0.95 {
			var misses []string
			for _, p := range pts {
				if p.v < 0.95 {
					misses = append(misses, fmt.Sprintf("%s %s", p.what, num(p.v, 3)))
				}
			}
			x.miss = "below 0.95: " + strings.Join(misses, "; ")
		}
		g = append(g, x)
	} else {
		g = append(g, goal{what: "throughput ≥ 0.95 of the raw floor", figure: r.why("throughput")})
	}
	// Side by side.
	rows := r.versusRows()
	measured, slower := 0, []string{}
	for _, row := range rows {
		if row.ratio > 0 {
			measured++
			if row.ratio <= 1 {
				slower = append(slower, fmt.Sprintf("%s (DSPy ÷ DSPEx %s)", row.what, num(row.ratio, 2)))
			}
		}
	}
	if measured > 0 {
		x := goal{what: "DSPEx faster than DSPy on every side-by-side row", figure: fmt.Sprintf("%d of %d rows faster", measured-len(slower), measured), met: yes(len(slower) == 0)}
		if len(slower) > 0 {
			x.miss = "slower: " + strings.Join(slower, "; ")
		}
		g = append(g, x)
	} else {
		g = append(g, goal{what: "DSPEx faster than DSPy on every side-by-side row", figure: r.why("versus")})
	}
	return g
}

// versusRow is one side-by-side row.
type versusRow struct {
	what, dspex, dspy, cmdID string
	ratio                    float64 // DSPy's time ÷ DSPEx's; 0 when not measured
}

func (r *report) versusRows() []versusRow {
	const v = "BenchmarkVersusDSPy"
	get := func(m string) (float64, bool) { return r.mean("versus", v, m) }
	var rows []versusRow
	us := func(what, dspexM, dspyM, ratioM string) {
		a, ok1 := get(dspexM)
		b, ok2 := get(dspyM)
		ratio, _ := get(ratioM)
		if ok1 && ok2 {
			rows = append(rows, versusRow{what: what, dspex: num(a, 0) + " µs", dspy: num(b, 0) + " µs", ratio: ratio, cmdID: "versus"})
		}
	}
	us("Predict per call, cache off, instant LM", "predict-dspex-us", "predict-dspy-us", "predict-dspy-x-dspex")
	us("cache hit, memory tier (Predict included)", "cache-memory-dspex-us", "cache-memory-dspy-us", "cache-memory-dspy-x-dspex")
	us("cache hit, disk tier (Predict included)", "cache-disk-dspex-us", "cache-disk-dspy-us", "cache-disk-dspy-x-dspex")
	if a, ok := get("eval-dspex-s"); ok {
		b, _ := get("eval-dspy-s")
		ai, _ := get("eval-dspex-of-ideal")
		bi, _ := get("eval-dspy-of-ideal")
		ratio, _ := get("eval-dspy-x-dspex")
		rows = append(rows, versusRow{what: "Evaluate, 100 ms latency, 64 at once (wall; fraction of ideal)",
			dspex: fmt.Sprintf("%s s (%s)", num(a, 3), num(ai, 3)), dspy: fmt.Sprintf("%s s (%s)", num(b, 3), num(bi, 3)), ratio: ratio, cmdID: "versus"})
	}
	if a, ok := get("boot-dspex-s"); ok {
		b, _ := get("boot-dspy-s")
		ac, _ := get("boot-dspex-calls")
		bc, _ := get("boot-dspy-calls")
		ratio, _ := get("boot-dspy-x-dspex")
		rows = append(rows, versusRow{what: "BootstrapFewShot, 50 ms, 16 demos (wall; LM calls)",
			dspex: fmt.Sprintf("%s s; %s calls", num(a, 3), num(ac, 0)), dspy: fmt.Sprintf("%s s; %s calls", num(b, 3), num(bc, 0)), ratio: ratio, cmdID: "versus"})
		if s, ok := get("boot-dspex-seq-s"); ok {
			sc, _ := get("boot-dspex-seq-calls")
			rs, _ := get("boot-dspy-x-dspex-seq")
			rows = append(rows, versusRow{what: "BootstrapFewShot, DSPEx sequential (Concurrency 1) as DSPy runs",
				dspex: fmt.Sprintf("%s s; %s calls", num(s, 3), num(sc, 0)), dspy: fmt.Sprintf("%s s; %s calls", num(b, 3), num(bc, 0)), ratio: rs, cmdID: "versus"})
		}
	}
	if a, ok := r.mean("mipro", "BenchmarkMIPRO", "wall-s"); ok {
		if b, ok := r.mean("mipro", "BenchmarkMIPRO", "dspy-wall-s"); ok {
			ac, _ := r.mean("mipro", "BenchmarkMIPRO", "lm-calls")
			bc, _ := r.mean("mipro", "BenchmarkMIPRO", "dspy-lm-calls")
			ratio, _ := r.mean("mipro", "BenchmarkMIPRO", "dspy-x-dspex")
			rows = append(rows, versusRow{what: "MIPROv2 auto light, 50 ms, trials one at a time (wall; LM calls)",
				dspex: fmt.Sprintf("%s s; %s calls", num(a, 3), num(ac, 0)), dspy: fmt.Sprintf("%s s; %s calls", num(b, 3), num(bc, 0)), ratio: ratio, cmdID: "mipro"})
		}
	}
	return rows
}

func (r *report) markdown(plots map[string]string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	e := r.env
	date := e.start.Format("2006-01-02 15:04 UTC")
	if e.quick {
		p("# Performance report (quick subset)\n\n")
		p("Written by `make bench-quick` (`go run ./scripts/bench/benchreport -quick`): a subset with short benchtimes, to check the machinery. These are not the reference figures; `make bench` writes those to docs/PERFORMANCE.md.\n\n")
	} else {
		p("# Performance report\n\n")
		p("Generated by `make bench` (`go run ./scripts/bench/benchreport`); do not edit by hand — rerun it. How the figures came to be, the profiles behind them and their history are in [performance](performance-notes.md).\n\n")
	}
	p("Every figure below was measured in one run of the suite:\n\n")
	p("| | |\n| --- | --- |\n")
	p("| date | %s |\n", date)
	p("| machine | %s, %d cores, %s GiB memory, %s |\n", e.cpu, e.cores, num(e.memGiB, 1), e.osArch)
	p("| Go | %s |\n", e.goVersion)
	p("| load average (1, 5, 15 min) | before %s; after %s |\n", orDash(e.loadBefore), orDash(e.loadAfter))
	p("| suite's wall time | %s s |\n", num(e.wall.Seconds(), 0))
	dspy := "not given: side-by-side rows skipped"
	if e.dspyPython != "" {
		dspy = fmt.Sprintf("`%s` (dspy 3.4.1, its own virtualenv)", e.dspyPython)
	}
	p("| DSPy | %s |\n\n", dspy)
	p("Absolute times on a shared 2-core virtual machine drift by ±20%% between runs, so every goal is a ratio measured within one run, the two sides alternating. Each section names the command that reproduces its figures (run from the repository root; `make bench` runs them all).\n\n")

	p("## Goals\n\n| goal | this run | met |\n| --- | --- | --- |\n")
	for _, g := range r.goals() {
		met := "not measured"
		if g.met != nil {
			met = "yes"
			if !*g.met {
				met = "**no**: " + g.miss
			}
		}
		p("| %s | %s | %s |\n", g.what, g.figure, met)
	}
	p("\nWhere a goal is missed, the section says by how much and why.\n\n")

	r.sectionOverhead(p, plots)
	r.sectionThroughput(p, plots)
	r.sectionCache(p)
	r.sectionGeneric(p, "## 4. Plugins: Go → Python → Go", []string{"plugin-rtt", "plugin-start"},
		"One unary Echo call over the plugin's unix socket (64-byte payload), a cold start (launch → first reply) and a restart after SIGKILL (→ the next reply, 1 ms backoff), for a Go fake plugin and the real Python echo plugin. Percentiles over the iterations.")
	r.sectionGeneric(p, "## 5. Sandbox", []string{"sandbox"},
		"The CodeAct interpreter plugin: a trivial snippet (`x += 1`) in a warm session, and a fresh pool's first snippet (process start, handshake, session, execution); sandboxed (where the OS sandbox can be created) and unsandboxed. ns/op is the time of one snippet or one cold start.")
	r.sectionOptimizers(p, plots)
	r.sectionVersus(p, plots)
	p("## Commands\n\n```sh\n")
	if e.quick {
		p("make bench-quick\n")
	} else {
		p("make bench\n")
	}
	for _, s := range r.runs {
		p("%s\n", s.command(e.dspyPython))
	}
	p("```\n")
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

type printer func(format string, a ...any)

func (r *report) command(p printer, ids ...string) {
	var cmds []string
	for _, id := range ids {
		if s := r.byID[id]; s != nil {
			cmds = append(cmds, s.command(r.env.dspyPython))
		}
	}
	if len(cmds) > 0 {
		p("```sh\n%s\n```\n\n", strings.Join(cmds, "\n"))
	}
}

func (r *report) notMeasured(p printer, id string) bool {
	if w := r.why(id); w != "" {
		p("Not measured in this run: %s.\n\n", w)
		return true
	}
	return false
}

func (r *report) img(p printer, plots map[string]string, key, alt string) {
	if f, ok := plots[key]; ok {
		p("![%s](img/%s)\n\n", alt, f)
	}
}

func (r *report) sectionOverhead(p printer, plots map[string]string) {
	p("## 1. Overhead per Predict call vs a raw HTTP round trip\n\n")
	p("A ChainOfThought `question -> answer: int` call (ChatAdapter formatting, the OpenAI-compatible client, parsing; cache off) against an in-process loopback server that answers at once, alternating call by call with a raw `net/http` POST of the very same request bytes: through the bare client and through the default execution stack (`lm.NewStack` with a zero `ExecConfig`: metering, collapse, pool, retry, breaker). Goal: stack ≤ 1.25× raw.\n\n")
	r.command(p, "predict")
	if r.notMeasured(p, "predict") {
		return
	}
	p("| run | raw ns/call | bare ns/call | stack ns/call | bare ÷ raw | stack ÷ raw | B/iteration | allocs/iteration |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	s := r.byID["predict"]
	i := 0
	for _, res := range s.parsed.results {
		if res.name != "BenchmarkPredict" {
			continue
		}
		i++
		m := res.metrics
		p("| %d | %s | %s | %s | %s | %s | %s | %s |\n", i, num(m["raw-ns/op"], 0), num(m["predict-ns/op"], 0), num(m["stack-ns/op"], 0),
			num(m["x-raw"], 3), num(m["stack-x-raw"], 3), num(m["B/op"], 0), num(m["allocs/op"], 0))
	}
	p("\nAn iteration is the three calls together (server side included in B and allocs).\n\n")
	if v := r.vals("predict", "BenchmarkPredict", "stack-x-raw"); len(v) > 0 && slices.Max(v) > 1.25 {
		raw, _ := r.mean("predict", "BenchmarkPredict", "raw-ns/op")
		st, _ := r.mean("predict", "BenchmarkPredict", "stack-ns/op")
		bare, _ := r.mean("predict", "BenchmarkPredict", "predict-ns/op")
		p("**Missed** in some runs, by up to %s× (the goal is 1.25× in every run). The framework's own time is %s µs a call over the raw round trip (the stack call took %s µs more than the bare one; the rest is formatting, the client and parsing); the raw round trip itself is %s µs, so every microsecond of work is about %s%% of it. See [performance](performance-notes.md) for the profile.\n\n",
			num(slices.Max(v)-1.25, 3), num((st-raw)/1000, 1), num((st-bare)/1000, 1), num(raw/1000, 1), num(100000/raw, 1))
	}
	r.img(p, plots, "overhead", "time per call: raw round trip, bare client, default stack")
}

func (r *report) sectionThroughput(p printer, plots map[string]string) {
	p("## 2. Throughput and Evaluate vs the ideal N·L/C, L = 100 ms\n\n")
	p("C concurrent callers against the simulator answering every call in exactly 100 ms, default settings (`lm.NewStack` with a zero `ExecConfig`; Evaluate with `Concurrency: C`), each alternating round by round with a raw floor in the same run: C goroutines posting the same number of requests with `net/http`. *Stack*: four calls per caller through the stack. *Evaluate*: N = 4·C distinct questions through a Predict program. The ideal wall time is N·L/C = 0.4 s; the goal is ≥ 0.95 of the floor (the ÷ raw columns) up to C = 1024.\n\n")
	r.command(p, "throughput", "evalsweep")
	if r.why("throughput") != "" && r.why("evalsweep") != "" {
		r.notMeasured(p, "throughput")
		return
	}
	p("| C | raw floor, of ideal | stack, of ideal | stack ÷ raw | CPU µs/call raw / stack | Evaluate's floor, of ideal | Evaluate, of ideal | Evaluate ÷ raw | CPU µs/call raw / Evaluate | heap + stack B per call in flight (Evaluate) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, c := range sweepC {
		t := fmt.Sprintf("BenchmarkThroughput/c=%d", c)
		ev := fmt.Sprintf("BenchmarkEvaluateSweep/c=%d", c)
		if len(r.vals("throughput", t, "stack-x-raw"))+len(r.vals("evalsweep", ev, "x-raw")) == 0 {
			continue
		}
		mem := "–"
		if h, ok := r.mean("evalsweep", ev, "heap-B/inflight"); ok && c >= 64 {
			s, _ := r.mean("evalsweep", ev, "stack-B/inflight")
			mem = fmt.Sprintf("%s + %s", num(h, 0), num(s, 0))
		}
		p("| %d | %s | %s | %s | %s / %s | %s | %s | %s | %s / %s | %s |\n", c,
			r.cell("throughput", t, "raw-of-ideal", 3), r.cell("throughput", t, "stack-of-ideal", 3), r.cell("throughput", t, "stack-x-raw", 3),
			r.cell("throughput", t, "raw-cpu-us/call", 0), r.cell("throughput", t, "stack-cpu-us/call", 0),
			r.cell("evalsweep", ev, "raw-of-ideal", 3), r.cell("evalsweep", ev, "of-ideal", 3), r.cell("evalsweep", ev, "x-raw", 3),
			r.cell("evalsweep", ev, "raw-cpu-us/call", 0), r.cell("evalsweep", ev, "cpu-us/call", 0), mem)
	}
	p("\nCPU per call is the whole process's (the simulator runs in it), so only the difference between the two columns is the framework's. Memory per call in flight is measured once all C calls are in flight (after a garbage collection, over the level before the run; below C = 64 the figure is within the noise and omitted); it includes the in-process simulator's side of each request, so it is an upper bound.\n\n")
	if r.why("heap") == "" {
		p("Memory per call in flight, 1,000 calls held (`BenchmarkHeapPerInFlight`):\n\n| through | heap B/call | goroutine stack B/call |\n| --- | --- | --- |\n")
		for _, res := range r.byID["heap"].parsed.results {
			p("| %s | %s | %s |\n", strings.TrimPrefix(res.name, "BenchmarkHeapPerInFlight/"), num(res.metrics["heap-B/inflight"], 0), num(res.metrics["stack-B/inflight"], 0))
		}
		p("\n")
		r.command(p, "heap")
	}
	// Why a miss.
	var notes []string
	for _, c := range sweepC {
		t := fmt.Sprintf("BenchmarkThroughput/c=%d", c)
		ev := fmt.Sprintf("BenchmarkEvaluateSweep/c=%d", c)
		sx, ok1 := r.mean("throughput", t, "stack-x-raw")
		ex, ok2 := r.mean("evalsweep", ev, "x-raw")
		if (!ok1 || sx >= 0.95) && (!ok2 || ex >= 0.95) {
			continue
		}
		var short []string
		if ok1 && sx < 0.95 {
			short = append(short, "the stack reached "+num(sx, 3))
		}
		if ok2 && ex < 0.95 {
			short = append(short, "Evaluate reached "+num(ex, 3))
		}
		note := fmt.Sprintf("C = %d: %s of the floor (missed by %s)", c, strings.Join(short, " and "), num(0.95-min(orOne(sx, ok1), orOne(ex, ok2)), 3))
		// Why: each caller's next call starts when its answer arrives, so
		// every 100 ms C answers arrive together and C requests go out at
		// once; at S µs of process CPU a call that burst needs C·S/cores
		// of the machine before the wave's last request has left.
		burst := func(id, name, rawM, sideM, label string) string {
			rawCPU, okr := r.mean(id, name, rawM)
			cpu, oks := r.mean(id, name, sideM)
			rawIdeal, oki := r.mean(id, name, "raw-of-ideal")
			if !okr || !oks || !oki || r.env.cores <= 0 {
				return ""
			}
			cores := float64(r.env.cores)
			return fmt.Sprintf("%s: %s µs of process CPU a call against the floor's %s µs (client and in-process simulator together), so a burst of %d calls takes about %s ms of the %d cores against %s ms (the floor's waves took %s ms, not 100: it reached %s of the ideal); the extra %s µs a call adds about %s ms to every wave",
				label, num(cpu, 0), num(rawCPU, 0), c, num(float64(c)*cpu/cores/1000, 0), r.env.cores, num(float64(c)*rawCPU/cores/1000, 0),
				num(100/rawIdeal, 0), num(rawIdeal, 3), num(cpu-rawCPU, 0), num(float64(c)*(cpu-rawCPU)/cores/1000, 0))
		}
		var parts []string
		if ok1 && sx < 0.95 {
			if w := burst("throughput", t, "raw-cpu-us/call", "stack-cpu-us/call", "stack"); w != "" {
				parts = append(parts, w)
			}
		}
		if ok2 && ex < 0.95 {
			if w := burst("evalsweep", ev, "raw-cpu-us/call", "cpu-us/call", "Evaluate (a Predict program: formatting and parsing on top of the stack)"); w != "" {
				parts = append(parts, w)
			}
		}
		if len(parts) > 0 {
			note += ". The run is CPU-bound in bursts: every 100 ms the C answers arrive together and the C next requests go out at once. " + strings.Join(parts, "; ") +
				". With more cores, or with the LM on another machine (the simulator's share of the CPU gone), the bursts shrink in proportion; on this machine only fewer CPU microseconds a call (client, adapter, layers) would close the gap"
		}
		notes = append(notes, note)
	}
	if len(notes) > 0 {
		p("**Missed** at:\n\n")
		for _, n := range notes {
			p("- %s.\n", n)
		}
		p("\n")
	}
	r.img(p, plots, "throughput", "fraction of the ideal N·L/C against concurrency")
}

// orOne is v, or 1 when it was not measured.
func orOne(v float64, ok bool) float64 {
	if !ok {
		return 1
	}
	return v
}

func (r *report) sectionCache(p printer) {
	p("## 3. Cache hits and collapsed duplicates\n\n")
	p("A whole Stack call answered from the cache (request key, lookup, decode, copy): memory tier, and SQLite with the memory tier off. Then 256 identical calls at once through the default stack (no cache) to the simulator at 100 ms: the collapse layer sends one request.\n\n")
	r.command(p, "cache", "dups")
	if r.why("cache") == "" {
		p("| tier | ns/op | B/op | allocs/op |\n| --- | --- | --- | --- |\n")
		for _, tier := range []string{"memory", "disk"} {
			n := "BenchmarkCacheHit/" + tier
			p("| %s | %s | %s | %s |\n", tier, r.cell("cache", n, "ns/op", 0), r.cell("cache", n, "B/op", 0), r.cell("cache", n, "allocs/op", 0))
		}
		p("\n")
	} else {
		r.notMeasured(p, "cache")
	}
	if r.why("dups") == "" {
		n := "BenchmarkCollapsedDuplicates"
		p("| identical callers | LM requests per wave | wave's wall time ÷ latency |\n| --- | --- | --- |\n| %s | %s | %s |\n\n",
			r.cell("dups", n, "callers", 0), r.cell("dups", n, "lm-calls", 2), r.cell("dups", n, "x-latency", 3))
	} else {
		r.notMeasured(p, "dups")
	}
}

// sectionGeneric lists every result of the steps with all their metrics.
func (r *report) sectionGeneric(p printer, title string, ids []string, intro string) {
	p("%s\n\n%s\n\n", title, intro)
	r.command(p, ids...)
	for _, id := range ids {
		if r.notMeasured(p, id) {
			continue
		}
		res := r.byID[id].parsed.results
		var units []string
		for _, x := range res {
			for u := range x.metrics {
				if u != "B/op" && u != "allocs/op" && !slices.Contains(units, u) {
					units = append(units, u)
				}
			}
		}
		slices.Sort(units)
		p("| benchmark | %s |\n|%s\n", strings.Join(units, " | "), strings.Repeat(" --- |", len(units)+1))
		for _, x := range res {
			var cells []string
			for _, u := range units {
				if v, ok := x.metrics[u]; ok {
					d := 2
					if v >= 1000 {
						d = 0
					}
					cells = append(cells, num(v, d))
				} else {
					cells = append(cells, "–")
				}
			}
			p("| %s | %s |\n", x.name, strings.Join(cells, " | "))
		}
		p("\n")
	}
}

func (r *report) sectionOptimizers(p printer, plots map[string]string) {
	p("## 6. Optimizers at 50 ms simulated latency\n\n")
	p("On the bundled task (examples/capitals), through the default execution layers, cache off, the simulator answering every call in 50 ms. *Concurrent* is each optimizer's default (BootstrapFewShot: 8 examples at once; random search: 8 bootstrapped and 16 evaluated at once; MIPROv2: 16 evaluation threads and 5 trials in flight); *sequential* is one at a time (MIPROv2: trials one at a time, DSPy's order). LM calls are the requests the simulator received, calls cancelled in flight included (and, where counted, how many of them their caller left before the answer). BootstrapFewShot wants 16 demos; random search scores 3 baselines and 3 shuffled candidates (4 demos at most) on 16 dev examples; MIPROv2 runs auto light (6 candidates, 10 trials) on 60 dev examples.\n\n")
	r.command(p, "optimizers", "mipro")
	p("| optimizer | concurrent: wall | LM calls | sequential: wall | LM calls | speed-up |\n| --- | --- | --- | --- | --- | --- |\n")
	o := "BenchmarkOptimizers"
	calls := func(name string) string {
		c := r.cell("optimizers", o, name+"-calls", 0)
		if v, ok := r.mean("optimizers", o, name+"-cancelled"); ok {
			c += fmt.Sprintf(" (%s cancelled in flight)", num(v, 0))
		}
		return c
	}
	if r.why("optimizers") == "" {
		p("| BootstrapFewShot | %s s | %s | %s s | %s | %s× |\n", r.cell("optimizers", o, "bootstrap-s", 3), calls("bootstrap"),
			r.cell("optimizers", o, "bootstrap-seq-s", 3), calls("bootstrap-seq"), r.cell("optimizers", o, "bootstrap-speedup", 2))
		p("| random search | %s s | %s | %s s | %s | %s× |\n", r.cell("optimizers", o, "random-s", 3), calls("random"),
			r.cell("optimizers", o, "random-seq-s", 3), calls("random-seq"), r.cell("optimizers", o, "random-speedup", 2))
	} else {
		p("| BootstrapFewShot, random search | %s | | | | |\n", r.why("optimizers"))
	}
	if r.why("mipro") == "" {
		m := "BenchmarkMIPRO"
		seq, _ := r.mean("mipro", m, "wall-s")
		conc, _ := r.mean("mipro", m, "inflight-wall-s")
		p("| MIPROv2 | %s s | %s | %s s | %s | %s× |\n", r.cell("mipro", m, "inflight-wall-s", 3), r.cell("mipro", m, "inflight-lm-calls", 0),
			r.cell("mipro", m, "wall-s", 3), r.cell("mipro", m, "lm-calls", 0), num(seq/conc, 2))
		p("\nMIPROv2's sampler plugin (Optuna, a Python process) took %s%% of the sequential run's wall time. With trials in flight the collapse layer merges identical requests of trials sharing a candidate and an example, hence fewer calls.\n", r.cell("mipro", m, "plugin-%", 2))
	} else {
		p("| MIPROv2 | %s | | | | |\n", r.why("mipro"))
	}
	p("\n")
	r.img(p, plots, "optimizers", "optimizers' wall time, concurrent, sequential and DSPy")
}

func (r *report) sectionVersus(p printer, plots map[string]string) {
	p("## 7. Side by side with DSPy 3.4.1\n\n")
	p("DSPy 3.4.1 in a virtualenv of its own (`bin/bench-venv`, made by `make bench`; never the project's `.venv`), pointed with `api_base` at the same in-process simulator as DSPEx, on the same signature (`question -> answer`, Predict) and data, the two systems alternating measurement by measurement in one run (`scripts/bench/dspy_side.py` serves DSPy's side of `BenchmarkVersusDSPy`; `scripts/bench/dspy_mipro.py` of `BenchmarkMIPRO`). DSPEx runs with its default execution layers; DSPy's LM has `cache=False` and its caches are off unless the row is a cache hit (DSPy: its memory cache, or its disk cache with the memory cache off). A ratio above 1 means DSPEx is faster. Only the work is timed: imports and set-up are off the clock on both sides.\n\n")
	r.command(p, "versus", "mipro")
	rows := r.versusRows()
	if len(rows) == 0 {
		r.notMeasured(p, "versus")
		return
	}
	p("| row | DSPEx | DSPy 3.4.1 | DSPy ÷ DSPEx |\n| --- | --- | --- | --- |\n")
	for _, row := range rows {
		p("| %s | %s | %s | %s× |\n", row.what, row.dspex, row.dspy, num(row.ratio, 2))
	}
	if raw, ok := r.mean("versus", "BenchmarkVersusDSPy", "raw-us"); ok {
		x, _ := r.mean("versus", "BenchmarkVersusDSPy", "predict-dspex-x-raw")
		p("\nThe raw Go round trip to this simulator (which parses the prompt and looks the question up, unlike section 1's instant server) took %s µs a call in the same run: DSPEx's Predict is %s× it.\n", num(raw, 0), num(x, 2))
	}
	var slower []string
	for _, row := range rows {
		if row.ratio > 0 && row.ratio <= 1 {
			slower = append(slower, fmt.Sprintf("%s: DSPEx takes %s× DSPy's time", row.what, num(1/row.ratio, 2)))
		}
	}
	if len(slower) > 0 {
		p("\n**Missed** (DSPEx not faster): %s.\n", strings.Join(slower, "; "))
	}
	p("\n")
	r.img(p, plots, "versus", "DSPy's time over DSPEx's per side-by-side row")
}
