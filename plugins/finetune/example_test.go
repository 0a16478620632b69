package finetune_test

import (
	"context"
	"fmt"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/plugins/finetune"
)

// BootstrapFinetune on an OpenAI-compatible endpoint that also serves the
// fine-tuning API (here the simulator, `dspex mock-lm`): the tuned
// program's predictor calls the new model through the same endpoint. (Not
// run: it needs Python with the finetune extra and a running simulator.)
func Example() {
	ctx := context.Background()
	host, err := bridge.NewHost(bridge.DefaultConfig(), bridge.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer host.Shutdown(ctx)
	trainer, _, err := finetune.Open(host, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	const base = "http://127.0.0.1:8089/v1"
	model, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: base})
	if err != nil {
		fmt.Println(err)
		return
	}
	trainset, err := example.LoadJSONL("examples/capitals/train.jsonl", "question")
	if err != nil {
		fmt.Println(err)
		return
	}
	opt := finetune.NewOptimizer(finetune.Config{
		Metric:  metric.ExactMatch("answer"),
		Trainer: trainer,
		Backend: finetune.Backend{Name: finetune.BackendOpenAI, Options: map[string]string{"base_url": base}},
		RunID:   "example",
	})
	res, err := opt.Compile(module.WithLM(ctx, model), module.NewPredict(signature.MustParse("question -> answer")), trainset)
	if err != nil {
		fmt.Println(err)
		return
	}
	j := res.Jobs[0]
	fmt.Printf("%d of %d runs passed; job %s trained %s on %d examples\n", res.Passed(), len(res.Traces), j.JobID, j.FineTunedModel, j.Examples)
	fmt.Println(res.Program.NamedPredictors()[0].Predictor.LM().Model())
}
