package mipro_test

import (
	"context"
	"fmt"
	"log"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/plugins/mipro"
	"github.com/dspex/dspex/plugins/sampler"
)

// MIPROv2 light on a question-answering program: the sampler plugin runs
// under a bridge host, the program and metric in Go.
func Example() {
	ctx := context.Background() // carries the task model: module.WithLM(ctx, taskLM)
	cfg := bridge.DefaultConfig()
	cfg.Plugins[sampler.PluginName] = sampler.Spec()
	host, err := bridge.NewHost(cfg, bridge.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Shutdown(ctx)
	client, _, err := sampler.Open(host, "")
	if err != nil {
		log.Fatal(err)
	}
	var trainset []example.Example // question/answer examples; the last 80% validate
	opt := mipro.New(mipro.Config{Metric: metric.ExactMatch("answer"), Sampler: client}, mipro.WithAuto(mipro.Light))
	res, err := opt.Compile(ctx, module.NewPredict(signature.MustParse("question -> answer")), trainset, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("best %.1f after %d trials\n", res.Score, len(res.Trials))
}
