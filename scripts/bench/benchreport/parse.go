package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// A result is one line of `go test -bench` output: a benchmark (its name
// without the -GOMAXPROCS suffix), its iterations and its metrics by unit
// (ns/op, B/op, allocs/op and whatever it reported with b.ReportMetric).
type result struct {
	name    string
	n       int64
	metrics map[string]float64
}

// skip is a benchmark that skipped itself, with its message.
type skip struct{ name, reason string }

// parsed is what parseBench found in one `go test -bench` output.
type parsed struct {
	results []result
	skips   []skip
	logs    map[string][]string // a benchmark's log lines (b.Log), in order
}

var (
	benchLineRE = regexp.MustCompile(`^(Benchmark\S*?)(?:-(\d+))?\s+(\d+)\s+(.+)$`)
	skipLineRE  = regexp.MustCompile(`^--- SKIP: (Benchmark\S*)`)
	benchLogRE  = regexp.MustCompile(`^--- (?:BENCH|FAIL|SKIP): (Benchmark\S*?)(?:-\d+)?$`)
	logLineRE   = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
)

// parseBench reads `go test -bench` text output. A benchmark line must be
// a name, an iteration count and pairs of a number and a unit; anything
// else is not a result (go test prints goos, pkg, PASS and logs around
// them). A metric that is not a finite number is an error naming the line.
func parseBench(r io.Reader) (*parsed, error) {
	p := &parsed{logs: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	current := "" // the benchmark whose log lines follow
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if m := skipLineRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			name := trimProcs(m[1])
			p.skips = append(p.skips, skip{name: name})
			current = name
			continue
		}
		if m := benchLogRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			current = m[1]
			continue
		}
		if m := logLineRE.FindStringSubmatch(line); m != nil && current != "" {
			p.logs[current] = append(p.logs[current], m[1])
			if k := len(p.skips) - 1; k >= 0 && p.skips[k].name == current && p.skips[k].reason == "" {
				p.skips[k].reason = m[1]
			}
			continue
		}
		m := benchLineRE.FindStringSubmatch(line)
		if m == nil {
			current = ""
			continue
		}
		fields := strings.Fields(m[4])
		if len(fields)%2 != 0 {
			continue // a benchmark's name followed by its own output, not a result
		}
		n, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: iterations %q: %w", lineNo, m[3], err)
		}
		res := result{name: m[1], n: n, metrics: map[string]float64{}}
		ok := true
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				ok = false
				break
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("line %d: %s: metric %s is %v", lineNo, m[1], fields[i+1], v)
			}
			res.metrics[fields[i+1]] = v
		}
		if !ok {
			continue
		}
		p.results = append(p.results, res)
		current = ""
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading benchmark output: %w", err)
	}
	return p, nil
}

// trimProcs drops the -GOMAXPROCS suffix go test adds to a name.
func trimProcs(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i]
		}
	}
	return name
}
