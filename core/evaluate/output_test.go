package evaluate

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
)

func outputsResult(t *testing.T) *Result {
	t.Helper()
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		if index(in) == 1 {
			return nil, errors.New("no, \"quoted\"\nnewline <q -> a>")
		}
		return example.NewPrediction(map[string]any{"answer": fmt.Sprintf("a%d", index(in)), "n": []int{1, 2}}), nil
	})
	res, err := Run(context.Background(), prog, dataset(3), metric.ExactMatch("answer"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestWriteJSON(t *testing.T) {
	res := outputsResult(t)
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Metric  string  `json:"metric"`
		Score   float64 `json:"score"`
		Mean    float64 `json:"mean"`
		Total   int     `json:"total"`
		Errors  int     `json:"errors"`
		Results []struct {
			Index   int            `json:"index"`
			Inputs  map[string]any `json:"inputs"`
			Outputs map[string]any `json:"outputs"`
			Labels  map[string]any `json:"labels"`
			Score   float64        `json:"score"`
			Error   string         `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !bytes.Contains(buf.Bytes(), []byte("<q -> a>")) {
		t.Errorf("the JSON escapes <, > or &:\n%s", buf.String())
	}
	if doc.Metric != "exact_match" || doc.Score != 66.67 || doc.Total != 3 || doc.Errors != 1 || len(doc.Results) != 3 {
		t.Fatalf("summary: %+v", doc)
	}
	r0, r1 := doc.Results[0], doc.Results[1]
	if diff := cmp.Diff(map[string]any{"q": 0.0}, r0.Inputs); diff != "" {
		t.Errorf("inputs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"answer": "a0", "n": []any{1.0, 2.0}}, r0.Outputs); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"answer": "a0"}, r0.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if r1.Index != 1 || r1.Score != 0 || r1.Error != "program: no, \"quoted\"\nnewline <q -> a>" || len(r1.Outputs) != 0 {
		t.Errorf("failed example: %+v", r1)
	}
}

func TestWriteCSV(t *testing.T) {
	res := outputsResult(t)
	var buf bytes.Buffer
	if err := res.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"index", "inputs", "outputs", "labels", "score", "feedback", "error"},
		{"0", `{"q": 0}`, `{"answer": "a0", "n": [1, 2]}`, `{"answer": "a0"}`, "1", "", ""},
		{"1", `{"q": 1}`, `{}`, `{"answer": "a1"}`, "0", "", "program: no, \"quoted\"\nnewline <q -> a>"},
		{"2", `{"q": 2}`, `{"answer": "a2", "n": [1, 2]}`, `{"answer": "a2"}`, "1", "", ""},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	for _, row := range rows[1:] {
		for _, cell := range row[1:4] {
			if !json.Valid([]byte(cell)) {
				t.Errorf("cell %q is not JSON", cell)
			}
		}
	}
}
