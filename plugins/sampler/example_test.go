package sampler_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/plugins/sampler"
)

// MIPROv2's loop over the sampler plugin: the baseline added, then ask,
// evaluate in Go, tell; after a plugin restart the study is rebuilt from
// Go's log and the loop goes on. (Not run: it needs Python with the
// sampler extra.)
func Example() {
	ctx := context.Background()
	cfg := bridge.DefaultConfig()
	cfg.Plugins[sampler.PluginName] = sampler.Spec()
	host, err := bridge.NewHost(cfg, bridge.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer host.Shutdown(ctx)
	c, _, err := sampler.Open(host, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	study := sampler.StudyConfig{ID: "mipro", Seed: 9, Space: []sampler.Param{
		sampler.Indices("0_predictor_instruction", 5),
		sampler.Indices("0_predictor_demos", 4),
	}}
	if _, err := c.CreateStudy(ctx, study); err != nil {
		fmt.Println(err)
		return
	}
	baseline := sampler.PastTrial{Value: 0.3, Params: sampler.Params{
		"0_predictor_instruction": sampler.ChoiceValue("0"),
		"0_predictor_demos":       sampler.ChoiceValue("0"),
	}}
	history := []sampler.PastTrial{baseline}
	if _, err := c.Replay(ctx, study.ID, history); err != nil {
		fmt.Println(err)
		return
	}
	for range 10 {
		trial, err := c.Ask(ctx, study.ID)
		if errors.Is(err, sampler.ErrNotFound) { // the plugin restarted
			if err = c.Rebuild(ctx, study, history); err == nil {
				trial, err = c.Ask(ctx, study.ID)
			}
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		instruction, _ := trial.Params.Index("0_predictor_instruction")
		score := 0.5 + float64(instruction)/10 // evaluate the candidate program here
		if err := c.Tell(ctx, study.ID, trial.Number, score, sampler.Complete); err != nil {
			fmt.Println(err)
			return
		}
		history = append(history, sampler.PastTrial{Params: trial.Params, Value: score})
	}
	best, _, err := c.Best(ctx, study.ID)
	fmt.Println(best.Params, err)
}
