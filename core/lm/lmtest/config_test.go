package lmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/pyjson"
)

func TestParseLatency(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		in      string
		want    Latency
		wantErr string
	}{
		{in: "", want: Latency{}},
		{in: "none", want: Latency{}},
		{in: "0", want: Latency{}},
		{in: "50ms", want: Latency{Dist: LatencyFixed, Value: 50 * ms}},
		{in: "fixed:1s", want: Latency{Dist: LatencyFixed, Value: time.Second}},
		{in: "uniform:10ms, 30ms", want: Latency{Dist: LatencyUniform, Min: 10 * ms, Max: 30 * ms}},
		{in: "normal:100ms,20ms", want: Latency{Dist: LatencyNormal, Value: 100 * ms, Stddev: 20 * ms}},
		{in: "LogNormal:80ms,0.5", want: Latency{Dist: LatencyLogNormal, Value: 80 * ms, Sigma: 0.5}},
		{in: "fast", wantErr: `bad duration "fast"`},
		{in: "gamma:1s,2s", wantErr: `unknown distribution "gamma"`},
		{in: "uniform:30ms", wantErr: "uniform wants uniform:MIN,MAX"},
		{in: "uniform:30ms,10ms", wantErr: "minimum 30ms exceeds maximum 10ms"},
		{in: "normal:-1s,1s", wantErr: "negative"},
		{in: "fixed:11m", wantErr: "exceeds 10m0s"},
		{in: "lognormal:80ms,x", wantErr: `sigma "x" is not a number`},
		{in: "lognormal:80ms,-1", wantErr: "outside [0, 10]"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLatency(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "lmtest: latency ") {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			again, err := ParseLatency(got.String())
			if err != nil || again != got {
				t.Errorf("round trip through %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseFault(t *testing.T) {
	tests := []struct {
		in      string
		want    Fault
		wantErr string
	}{
		{in: "500", want: Fault{Kind: FaultServerError, Rate: 1}},
		{in: "429:0.1", want: Fault{Kind: FaultRateLimit, Rate: 0.1}},
		{in: "429:0.2,retry_after=2s", want: Fault{Kind: FaultRateLimit, Rate: 0.2, RetryAfter: 2 * time.Second}},
		{in: "429:retry_after=3", want: Fault{Kind: FaultRateLimit, Rate: 1, RetryAfter: 3 * time.Second}},
		{in: "500:first=3", want: Fault{Kind: FaultServerError, FirstN: 3}},
		{in: "hang:0.05", want: Fault{Kind: FaultHang, Rate: 0.05}},
		{in: "timeout:first=1", want: Fault{Kind: FaultHang, FirstN: 1}},
		{in: " Truncated : rate=0.5, first=1", want: Fault{Kind: FaultTruncated, Rate: 0.5, FirstN: 1}},
		{in: "badfields", want: Fault{Kind: FaultBadFields, Rate: 1}},
		{in: "malformed:0", want: Fault{Kind: FaultMalformed}},
		{in: "418", wantErr: `unknown kind "418"`},
		{in: "500:1.5", wantErr: "outside [0, 1]"},
		{in: "500:lots", wantErr: `rate "lots" is not a number`},
		{in: "500:first=x", wantErr: `first "x" is not an integer`},
		{in: "500:first=-1", wantErr: "negative"},
		{in: "500:retry_after=1s", wantErr: "429 and 503 only"},
		{in: "429:retry_after=soon", wantErr: "not a duration"},
		{in: "429:burst=3", wantErr: `unknown option "burst"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFault(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "lmtest: fault ") {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			again, err := ParseFault(got.String())
			if err != nil || again != got {
				t.Errorf("round trip through %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad fault", Config{Faults: []Fault{{Kind: "boom", Rate: 1}}}, "unknown kind"},
		{"bad rate", Config{Faults: []Fault{{Kind: FaultServerError, Rate: 2}}}, "outside [0, 1]"},
		{"bad latency", Config{Latency: Latency{Dist: LatencyUniform, Min: time.Second}}, "exceeds maximum"},
		{"bad script", Config{Script: &Script{Rules: []Rule{{Times: -1}}}}, "rule 1: times -1 is negative"},
		{"empty model", Config{Models: []string{" "}}, "empty model name"},
		{"negative body", Config{MaxBodyBytes: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "lmtest: ") {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadScript(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `
rules:
  - match: capital of France
    fields:
      answer: Paris
      confidence: 0.9
      summary: {headline: H, score: 2}
      tags: &t [a, b]
      more: *t
  - match: broken
    raw: "no markers"
    times: 2
  - match: ""
    match_any_message: true
`)
	s, err := LoadScript(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rules) != 3 || s.Rules[1].Times != 2 || s.Rules[1].Raw != "no markers" || !s.Rules[2].MatchAnyMessage {
		t.Fatalf("rules = %+v", s.Rules)
	}
	f := s.Rules[0].Fields
	if f["answer"] != "Paris" || f["confidence"] != 0.9 {
		t.Errorf("fields = %#v", f)
	}
	if got := pyjson.Dumps(f["summary"], -1); got != `{"headline": "H", "score": 2}` {
		t.Errorf("summary = %s (key order must be kept)", got)
	}
	if got := pyjson.Dumps(f["more"], -1); got != `["a", "b"]` {
		t.Errorf("alias = %s", got)
	}

	tests := []struct {
		name, text, want string
	}{
		{"bad yaml", "rules: [", "parse yaml"},
		{"unknown key", "rules:\n  - mach: x\n", "field mach not found"},
		{"raw and fields", "rules:\n  - raw: x\n    fields: {a: b}\n", "rule 1: raw and fields cannot both be set"},
		{"negative times", "rules:\n  - match: a\n  - times: -2\n", "rule 2: times -2 is negative"},
		{"empty", "", "script is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tt.name, " ", "_")+".yaml", tt.text)
			_, err := LoadScript(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("err = %v, want one naming %s and containing %q", err, p, tt.want)
			}
		})
	}
	if _, err := LoadScript(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}
