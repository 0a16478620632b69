package lmtest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// FaultKind names a simulated failure.
type FaultKind string

// Fault kinds.
const (
	// FaultRateLimit answers 429 with a Retry-After header.
	FaultRateLimit FaultKind = "429"
	// FaultServerError answers 500.
	FaultServerError FaultKind = "500"
	// FaultBadGateway answers 502.
	FaultBadGateway FaultKind = "502"
	// FaultUnavailable answers 503, with Retry-After when RetryAfter is set.
	FaultUnavailable FaultKind = "503"
	// FaultHang never answers: the request waits until the client goes
	// away or the server closes (then the connection is dropped).
	FaultHang FaultKind = "hang"
	// FaultReset drops the connection without an answer.
	FaultReset FaultKind = "reset"
	// FaultMalformed answers 200 with a body that is not valid JSON.
	FaultMalformed FaultKind = "malformed"
	// FaultTruncated answers 200 with every completion text cut in half
	// (later fields and the completed marker go missing) and
	// finish_reason "length".
	FaultTruncated FaultKind = "truncated"
	// FaultBadFields answers 200 with a completion whose first typed
	// output field (int, float, bool, Literal, list, dict, object) holds a
	// value that does not parse as its type; when no output field is
	// typed, the last output field is left out.
	FaultBadFields FaultKind = "badfields"
)

// faultKinds lists the kinds in the order help texts show them.
func faultKinds() []FaultKind {
	return []FaultKind{FaultRateLimit, FaultServerError, FaultBadGateway, FaultUnavailable,
		FaultHang, FaultReset, FaultMalformed, FaultTruncated, FaultBadFields}
}

func (k FaultKind) known() bool {
	for _, x := range faultKinds() {
		if k == x {
			return true
		}
	}
	return false
}

// DefaultRetryAfter is the Retry-After a 429 fault sends when its
// RetryAfter is zero.
const DefaultRetryAfter = time.Second

// Fault injects one kind of failure into model requests (chat completions
// and embeddings; truncated and badfields apply to chat completions only).
// A request gets the fault when its sequence number (1 for the server's
// first model request) is at most FirstN, or when a uniform draw from an
// RNG seeded by the server seed, the request's sequence number and the
// fault's position in Config.Faults falls below Rate. So the same seed and
// the same order of requests inject the same faults. When several faults
// fire for one request, the first in Config.Faults wins.
//
// A Fault with zero Rate and zero FirstN never fires.
type Fault struct {
	Kind FaultKind
	// Rate is the probability in [0, 1] that a request gets the fault.
	Rate float64
	// FirstN makes the first FirstN model requests get the fault.
	FirstN int
	// RetryAfter is sent as the Retry-After header (whole seconds,
	// rounded up) by 429 (default DefaultRetryAfter) and 503 (default
	// none) faults.
	RetryAfter time.Duration
}

// ParseFault reads a fault spec, KIND[:OPTION,...]:
//
//	"500"                      every request fails with 500
//	"429:0.1"                  10% of requests get 429 (Retry-After: 1)
//	"429:0.2,retry_after=2s"   20% get 429 with Retry-After: 2
//	"500:first=3"              the first 3 requests get 500
//	"hang:0.05"                5% of requests never answer
//	"truncated:rate=0.5,first=1"
//
// KIND is one of 429, 500, 502, 503, hang (alias timeout), reset,
// malformed, truncated, badfields. A bare number is the rate. Options are
// rate=R (0..1), first=N, and retry_after=DURATION (or whole seconds; 429
// and 503 only). Without rate or first, the fault hits every request.
func ParseFault(s string) (Fault, error) {
	f, err := parseFault(strings.TrimSpace(s))
	if err != nil {
		return Fault{}, fmt.Errorf("lmtest: fault %q: %w", s, err)
	}
	return f, nil
}

func parseFault(s string) (Fault, error) {
	kind, opts, hasOpts := strings.Cut(s, ":")
	f := Fault{Kind: FaultKind(strings.ToLower(strings.TrimSpace(kind)))}
	if f.Kind == "timeout" {
		f.Kind = FaultHang
	}
	if !f.Kind.known() {
		return Fault{}, fmt.Errorf("unknown kind %q (want one of %s)", kind, kindList())
	}
	rateSet := false
	if hasOpts {
		for opt := range strings.SplitSeq(opts, ",") {
			opt = strings.TrimSpace(opt)
			key, val, isKV := strings.Cut(opt, "=")
			if !isKV {
				key, val = "rate", opt
			}
			key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
			switch key {
			case "rate":
				r, err := strconv.ParseFloat(val, 64)
				if err != nil {
					return Fault{}, fmt.Errorf("rate %q is not a number", val)
				}
				f.Rate, rateSet = r, true
			case "first":
				n, err := strconv.Atoi(val)
				if err != nil {
					return Fault{}, fmt.Errorf("first %q is not an integer", val)
				}
				f.FirstN = n
			case "retry_after", "retry-after":
				d, err := parseRetryAfter(val)
				if err != nil {
					return Fault{}, err
				}
				if f.Kind != FaultRateLimit && f.Kind != FaultUnavailable {
					return Fault{}, fmt.Errorf("retry_after applies to 429 and 503 only")
				}
				f.RetryAfter = d
			default:
				return Fault{}, fmt.Errorf("unknown option %q (want rate=R, first=N or retry_after=DURATION)", key)
			}
		}
	}
	if !rateSet && f.FirstN == 0 {
		f.Rate = 1
	}
	if err := f.validate(); err != nil {
		return Fault{}, err
	}
	return f, nil
}

func parseRetryAfter(val string) (time.Duration, error) {
	if n, err := strconv.Atoi(val); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(val)
	if err != nil {
		return 0, fmt.Errorf("retry_after %q is not a duration", val)
	}
	return d, nil
}

func kindList() string {
	ks := faultKinds()
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = string(k)
	}
	return strings.Join(parts, ", ")
}

// Validate reports whether the fault's settings make sense.
func (f Fault) Validate() error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("lmtest: fault %s: %w", f.Kind, err)
	}
	return nil
}

func (f Fault) validate() error {
	switch {
	case !f.Kind.known():
		return fmt.Errorf("unknown kind %q (want one of %s)", f.Kind, kindList())
	case f.Rate < 0 || f.Rate > 1 || math.IsNaN(f.Rate):
		return fmt.Errorf("rate %g is outside [0, 1]", f.Rate)
	case f.FirstN < 0:
		return fmt.Errorf("first %d is negative", f.FirstN)
	case f.RetryAfter < 0 || f.RetryAfter > time.Hour:
		return fmt.Errorf("retry_after %s is outside [0, 1h]", f.RetryAfter)
	}
	return nil
}

// String returns the spec ParseFault reads back.
func (f Fault) String() string {
	var opts []string
	if f.Rate > 0 {
		opts = append(opts, "rate="+strconv.FormatFloat(f.Rate, 'g', -1, 64))
	}
	if f.FirstN > 0 {
		opts = append(opts, "first="+strconv.Itoa(f.FirstN))
	}
	if f.RetryAfter > 0 {
		opts = append(opts, "retry_after="+f.RetryAfter.String())
	}
	if len(opts) == 0 {
		return string(f.Kind) + ":rate=0"
	}
	return string(f.Kind) + ":" + strings.Join(opts, ",")
}

// fires decides whether request seq gets the fault, given a uniform draw u.
func (f Fault) fires(seq uint64, u float64) bool {
	return (f.FirstN > 0 && seq <= uint64(f.FirstN)) || u < f.Rate
}

// retryAfterHeader is the Retry-After value for the fault, "" for none.
func (f Fault) retryAfterHeader() string {
	d := f.RetryAfter
	if d == 0 && f.Kind == FaultRateLimit {
		d = DefaultRetryAfter
	}
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}
