package evaluate

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
)

// jsonResult is the document WriteJSON writes.
type jsonResult struct {
	Metric  string        `json:"metric"`
	Score   float64       `json:"score"`
	Mean    float64       `json:"mean"`
	Total   int           `json:"total"`
	Scored  int           `json:"scored"`
	Errors  int           `json:"errors"`
	Skipped int           `json:"skipped"`
	Usage   lm.Usage      `json:"usage"`
	Cost    lm.Cost       `json:"cost"`
	WallMS  float64       `json:"wall_ms"`
	Stopped string        `json:"stopped,omitempty"`
	Results []jsonExample `json:"results"`
}

type jsonExample struct {
	Index      int             `json:"index"`
	Inputs     json.RawMessage `json:"inputs"`
	Outputs    json.RawMessage `json:"outputs"`
	Labels     json.RawMessage `json:"labels"`
	Score      float64         `json:"score"`
	Feedback   string          `json:"feedback,omitempty"`
	Error      string          `json:"error,omitempty"`
	DurationMS float64         `json:"duration_ms"`
	Usage      lm.Usage        `json:"usage"`
	Cost       lm.Cost         `json:"cost"`
}

// WriteJSON writes the result as one indented JSON object: the summary
// (metric, score, mean, total, scored, errors, skipped, usage, cost,
// wall_ms, stopped when the run stopped early) and "results", one object
// per finished example in input order (index, inputs, outputs, labels,
// score, feedback, error, duration_ms, usage, cost). inputs are the fields
// the program was given, outputs the prediction's fields ({} when the
// program failed), labels the example's other fields ({} when the example
// marks no inputs, since then every field was an input).
func (r *Result) WriteJSON(w io.Writer) error {
	doc := jsonResult{
		Metric: r.Metric, Score: r.Score, Mean: r.Mean, Total: r.Total, Scored: r.Scored, Errors: r.Errors,
		Skipped: r.Skipped, Usage: r.Usage, Cost: r.Cost, WallMS: ms(r.Wall.Seconds()),
		Results: make([]jsonExample, len(r.Results)),
	}
	if r.Stopped != nil {
		doc.Stopped = r.Stopped.Error()
	}
	for i, er := range r.Results {
		inputs, outputs, labels := columns(er)
		doc.Results[i] = jsonExample{
			Index: er.Index, Inputs: json.RawMessage(inputs), Outputs: json.RawMessage(outputs), Labels: json.RawMessage(labels),
			Score: er.Score, Feedback: er.Feedback, Error: errText(er.Err), DurationMS: ms(er.Duration.Seconds()),
			Usage: er.Usage, Cost: er.Cost,
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("evaluate: write json: %w", err)
	}
	return nil
}

// WriteCSV writes one row per finished example, in input order, under the
// header index, inputs, outputs, labels, score, feedback, error; inputs,
// outputs and labels are JSON objects (as in WriteJSON).
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"index", "inputs", "outputs", "labels", "score", "feedback", "error"}); err != nil {
		return fmt.Errorf("evaluate: write csv: %w", err)
	}
	for _, er := range r.Results {
		inputs, outputs, labels := columns(er)
		row := []string{strconv.Itoa(er.Index), inputs, outputs, labels,
			strconv.FormatFloat(er.Score, 'g', -1, 64), er.Feedback, errText(er.Err)}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("evaluate: write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("evaluate: write csv: %w", err)
	}
	return nil
}

// columns returns an example's inputs, outputs and labels as JSON objects.
func columns(er ExampleResult) (inputs, outputs, labels string) {
	var out, lab map[string]any
	if er.Prediction != nil {
		out = er.Prediction.Map()
	}
	if er.Example.HasInputs() {
		lab = er.Example.Labels()
	}
	return jsonObject(er.Example.Inputs()), jsonObject(out), jsonObject(lab)
}

// jsonObject writes m as a JSON object with sorted keys, any Go value
// written as DSPy would (values JSON cannot hold become their text).
func jsonObject(m map[string]any) string {
	if len(m) == 0 {
		return "{}"
	}
	return pyjson.Dumps(m, -1)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ms converts seconds to milliseconds, rounded to microseconds.
func ms(s float64) float64 { return float64(int64(s*1e6+0.5)) / 1e3 }
