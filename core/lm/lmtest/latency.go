package lmtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// MaxLatency bounds every simulated delay; samples above it are clamped.
const MaxLatency = 10 * time.Minute

// LatencyDist names a latency distribution.
type LatencyDist string

// Latency distributions.
const (
	// LatencyNone adds no delay (the zero Latency).
	LatencyNone LatencyDist = ""
	// LatencyFixed waits exactly Value.
	LatencyFixed LatencyDist = "fixed"
	// LatencyUniform waits a uniform time in [Min, Max].
	LatencyUniform LatencyDist = "uniform"
	// LatencyNormal waits a normal time with mean Value and standard
	// deviation Stddev, clamped at zero.
	LatencyNormal LatencyDist = "normal"
	// LatencyLogNormal waits Value·exp(Sigma·Z) for a standard normal Z:
	// a log-normal time whose median is Value, with a long right tail.
	LatencyLogNormal LatencyDist = "lognormal"
)

// Latency is the delay the simulator adds before answering a model
// request. The zero value adds none. Samples are drawn from an RNG seeded
// by the server seed and the request's sequence number, so a run of
// sequential requests sees the same delays every time. Every sample is
// clamped to [0, MaxLatency].
type Latency struct {
	Dist LatencyDist
	// Value is the fixed delay, the normal mean or the log-normal median.
	Value time.Duration
	// Stddev is the normal distribution's standard deviation.
	Stddev time.Duration
	// Min and Max bound the uniform distribution.
	Min, Max time.Duration
	// Sigma is the log-normal shape: the standard deviation of log(delay).
	Sigma float64
}

// ParseLatency reads a latency spec:
//
//	""  or "0" or "none"           no delay
//	"50ms"  or "fixed:50ms"        always 50ms
//	"uniform:10ms,30ms"            uniform between 10ms and 30ms
//	"normal:100ms,20ms"            normal, mean 100ms, stddev 20ms, clamped at 0
//	"lognormal:80ms,0.5"           log-normal, median 80ms, sigma 0.5
//
// Durations use Go syntax (time.ParseDuration); none may exceed MaxLatency.
func ParseLatency(s string) (Latency, error) {
	l, err := parseLatency(strings.TrimSpace(s))
	if err != nil {
		return Latency{}, fmt.Errorf("lmtest: latency %q: %w", s, err)
	}
	return l, nil
}

func parseLatency(s string) (Latency, error) {
	switch s {
	case "", "0", "none":
		return Latency{}, nil
	}
	dist, args, ok := strings.Cut(s, ":")
	if !ok {
		d, err := parseDuration(s)
		if err != nil {
			return Latency{}, fmt.Errorf("%w (want DURATION or DIST:ARGS, e.g. 50ms or normal:100ms,20ms)", err)
		}
		return Latency{Dist: LatencyFixed, Value: d}, nil
	}
	parts := strings.Split(args, ",")
	want := func(n int, form string) error {
		if len(parts) != n {
			return fmt.Errorf("%s wants %s", dist, form)
		}
		return nil
	}
	var l Latency
	var err error
	switch LatencyDist(strings.ToLower(dist)) {
	case LatencyFixed:
		if err = want(1, "fixed:DURATION"); err != nil {
			return Latency{}, err
		}
		l = Latency{Dist: LatencyFixed}
		l.Value, err = parseDuration(parts[0])
	case LatencyUniform:
		if err = want(2, "uniform:MIN,MAX"); err != nil {
			return Latency{}, err
		}
		l = Latency{Dist: LatencyUniform}
		if l.Min, err = parseDuration(parts[0]); err == nil {
			l.Max, err = parseDuration(parts[1])
		}
	case LatencyNormal:
		if err = want(2, "normal:MEAN,STDDEV"); err != nil {
			return Latency{}, err
		}
		l = Latency{Dist: LatencyNormal}
		if l.Value, err = parseDuration(parts[0]); err == nil {
			l.Stddev, err = parseDuration(parts[1])
		}
	case LatencyLogNormal:
		if err = want(2, "lognormal:MEDIAN,SIGMA"); err != nil {
			return Latency{}, err
		}
		l = Latency{Dist: LatencyLogNormal}
		if l.Value, err = parseDuration(parts[0]); err == nil {
			l.Sigma, err = strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
			if err != nil {
				err = fmt.Errorf("sigma %q is not a number", strings.TrimSpace(parts[1]))
			}
		}
	default:
		return Latency{}, fmt.Errorf("unknown distribution %q (want fixed, uniform, normal or lognormal)", dist)
	}
	if err != nil {
		return Latency{}, err
	}
	if err := l.validate(); err != nil {
		return Latency{}, err
	}
	return l, nil
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// Validate reports whether the latency's parameters make sense.
func (l Latency) Validate() error {
	if err := l.validate(); err != nil {
		return fmt.Errorf("lmtest: latency: %w", err)
	}
	return nil
}

func (l Latency) validate() error {
	for _, d := range []time.Duration{l.Value, l.Stddev, l.Min, l.Max} {
		if d < 0 {
			return fmt.Errorf("duration %s is negative", d)
		}
		if d > MaxLatency {
			return fmt.Errorf("duration %s exceeds %s", d, MaxLatency)
		}
	}
	switch l.Dist {
	case LatencyNone, LatencyFixed, LatencyNormal:
	case LatencyUniform:
		if l.Min > l.Max {
			return fmt.Errorf("uniform minimum %s exceeds maximum %s", l.Min, l.Max)
		}
	case LatencyLogNormal:
		if l.Sigma < 0 || l.Sigma > 10 || math.IsNaN(l.Sigma) {
			return fmt.Errorf("lognormal sigma %g is outside [0, 10]", l.Sigma)
		}
	default:
		return errors.New("unknown distribution " + strconv.Quote(string(l.Dist)))
	}
	return nil
}

// String returns the spec ParseLatency reads back.
func (l Latency) String() string {
	switch l.Dist {
	case LatencyFixed:
		return l.Value.String()
	case LatencyUniform:
		return fmt.Sprintf("uniform:%s,%s", l.Min, l.Max)
	case LatencyNormal:
		return fmt.Sprintf("normal:%s,%s", l.Value, l.Stddev)
	case LatencyLogNormal:
		return fmt.Sprintf("lognormal:%s,%s", l.Value, strconv.FormatFloat(l.Sigma, 'g', -1, 64))
	}
	return "none"
}

// sample draws one delay.
func (l Latency) sample(r *rand.Rand) time.Duration {
	var d float64
	switch l.Dist {
	case LatencyFixed:
		d = float64(l.Value)
	case LatencyUniform:
		d = float64(l.Min) + r.Float64()*float64(l.Max-l.Min)
	case LatencyNormal:
		d = float64(l.Value) + r.NormFloat64()*float64(l.Stddev)
	case LatencyLogNormal:
		d = float64(l.Value) * math.Exp(l.Sigma*r.NormFloat64())
	default:
		return 0
	}
	switch {
	case d <= 0 || math.IsNaN(d):
		return 0
	case d >= float64(MaxLatency):
		return MaxLatency
	}
	return time.Duration(d)
}
