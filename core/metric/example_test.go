package metric_test

import (
	"context"
	"fmt"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/metric"
)

func ExampleF1() {
	ex := example.New(map[string]any{"answer": []string{"Eiffel Tower", "Louvre"}})
	pred := example.NewPrediction(map[string]any{"answer": "The Eiffel Tower, in Paris"})
	for _, m := range []metric.Metric{metric.ExactMatch("answer"), metric.F1("answer"), metric.Contains("answer")} {
		r, err := m.Score(context.Background(), ex, pred)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s %.2f\n", m.Name(), r.Score)
	}
	// Output:
	// exact_match 0.00
	// f1 0.67
	// contains 1.00
}

func ExampleByName() {
	m, err := metric.ByName("bleu", "answer")
	fmt.Println(m, err)
	m, _ = metric.ByName("exact_match", "")
	_, err = m.Score(context.Background(), example.New(map[string]any{"answer": "4"}), example.NewPrediction(map[string]any{"result": "4"}))
	fmt.Println(err)
	// Output:
	// <nil> metric: unknown metric "bleu" (known: contains, exact_match, f1, passage_match)
	// metric exact_match: the prediction has no field "answer"
}
