package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/plugins/finetune"
)

// finetuneFlags are the flags of --optimizer finetune.
type finetuneFlags struct {
	backend      string
	baseModel    string
	options      []string
	hyper        []string
	perPredictor bool
	excludeDemos bool
}

// finetuneBackends are the backends the fine-tuning plugin offers.
var finetuneBackends = []string{finetune.BackendOpenAI, finetune.BackendLocal}

// finetuneHint says what makes the fine-tuning plugin run.
const finetuneHint = "BootstrapFinetune's trainer is a Python plugin: set DSPEX_PYTHON (or plugins.python in the program file or --config) " +
	"to a Python with dspex_plugins and the backend's extra, pip install 'dspex_plugins[finetune]' (openai) or " +
	"'dspex_plugins[finetune-local]' (local), from the repository (see docs/finetune.md)"

func (f *finetuneFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.backend, "backend", finetune.BackendOpenAI, "finetune: the trainer's backend: "+strings.Join(finetuneBackends, ", "))
	cmd.Flags().StringVar(&f.baseModel, "base-model", "", "finetune: the model to fine-tune (default: the program's lm: model)")
	cmd.Flags().StringArrayVar(&f.options, "backend-option", nil, "finetune: KEY=VALUE backend option, repeatable (openai: base_url defaults to the program's lm.base_url)")
	cmd.Flags().StringArrayVar(&f.hyper, "hyperparameter", nil, "finetune: KEY=VALUE training hyperparameter, repeatable (DSPy's train_kwargs; openai: n_epochs, batch_size, learning_rate_multiplier)")
	cmd.Flags().BoolVar(&f.perPredictor, "per-predictor", false, "finetune: one job per predictor on its own calls (default: one job per LM on every call, DSPy's multitask)")
	cmd.Flags().BoolVar(&f.excludeDemos, "exclude-demos", false, "finetune: train without the predictors' demos and drop them from the tuned program")
}

// finetuneConfig checks the finetune flags, before any LM call, and
// returns the optimizer's configuration without its trainer, run id and
// resume log.
func (f *optimizeFlags) finetuneConfig(t *task) (finetune.Config, error) {
	ff := f.finetune
	cfg := finetune.Config{Metric: t.metric, BaseModel: ff.baseModel, PerPredictor: ff.perPredictor,
		ExcludeDemos: ff.excludeDemos, Concurrency: f.concurrency}
	if !slices.Contains(finetuneBackends, ff.backend) {
		return cfg, usageError("--backend %q: expected one of %s", ff.backend, strings.Join(finetuneBackends, ", "))
	}
	opts, err := keyValues("--backend-option", ff.options)
	if err != nil {
		return cfg, err
	}
	if len(ff.hyper) > 0 {
		if cfg.Hyperparameters, err = keyValues("--hyperparameter", ff.hyper); err != nil {
			return cfg, err
		}
	}
	if ff.backend == finetune.BackendOpenAI {
		if _, ok := opts["base_url"]; !ok {
			opts["base_url"] = t.spec.LM.BaseURL
		}
		if opts["base_url"] == "" {
			return cfg, usageError("--backend openai needs the provider's base URL: the program file's lm: has no base_url; give --backend-option base_url=URL")
		}
		if _, ok := opts["api_key_env"]; !ok && t.spec.LM.APIKeyEnv != "" {
			opts["api_key_env"] = t.spec.LM.APIKeyEnv
		}
	}
	cfg.Backend = finetune.Backend{Name: ff.backend, Options: opts}
	return cfg, nil
}

// keyValues reads KEY=VALUE flag values.
func keyValues(flag string, kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageError("%s %q: expected KEY=VALUE", flag, kv)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

// fingerprintSettings is what changes the jobs a fine-tuning starts.
func (ff finetuneFlags) fingerprintSettings() string {
	return fmt.Sprintf("|%s|%s|%v|%v|%s|%s", ff.backend, ff.baseModel, ff.perPredictor, ff.excludeDemos,
		strings.Join(ff.options, "\x00"), strings.Join(ff.hyper, "\x00"))
}

// openFinetune starts the fine-tuning plugin under a bridge host (the
// plugins: section of --config, else of the program file, over the
// built-in registry) and asks the backend for a job that does not exist,
// so that a missing interpreter or dspex_plugins, a backend option it does
// not know, the openai package missing, or a provider that cannot be
// reached or refuses the key fails before any LM call. The caller shuts
// the host down.
func (f *optimizeFlags) openFinetune(ctx context.Context, ss *session, b finetune.Backend) (*bridge.Host, *finetune.Client, error) {
	host, limit, err := f.pluginHost(ss)
	if err != nil {
		return nil, nil, err
	}
	client, p, err := finetune.Open(host, "")
	if err != nil {
		shutdownHost(host)
		if errors.Is(err, bridge.ErrPythonNotFound) {
			err = fmt.Errorf("%w; %s", err, finetuneHint)
		}
		return nil, nil, err
	}
	if err := awaitFirstStart(ctx, p, limit); err != nil {
		shutdownHost(host)
		return nil, nil, fmt.Errorf("the fine-tuning plugin did not start: %w; %s", err, finetuneHint)
	}
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if _, err := client.GetJob(pctx, b, "dspex-check"); err != nil && !errors.Is(err, finetune.ErrNotFound) {
		shutdownHost(host)
		return nil, nil, fmt.Errorf("the fine-tuning plugin cannot use backend %s: %w", b.Name, err)
	}
	return host, client, nil
}

// finetuneResume reads the job records of the run being resumed.
func (f *optimizeFlags) finetuneResume(ctx context.Context) ([]finetune.JobRecord, error) {
	r, err := openTraces(ctx, f.observe.db)
	if err != nil {
		return nil, fmt.Errorf("--resume %s: %w", f.resume, err)
	}
	defer r.Close()
	evs, err := r.Events(ctx, f.resume, string(finetune.JobKind))
	if err != nil {
		return nil, fmt.Errorf("--resume %s: %w", f.resume, err)
	}
	return finetune.JobsFromEvents(evs), nil
}

// reportFinetune sums up the fine-tuning: the traces used and each job.
func reportFinetune(s *streams, res *finetune.Result) {
	if res.Resumed {
		fmt.Fprintf(s.err, "dspex: fine-tuning: followed the jobs the interrupted run started (no bootstrap)\n")
	} else {
		fmt.Fprintf(s.err, "dspex: fine-tuning: %d of %d teacher runs passed the metric\n", res.Passed(), len(res.Traces))
	}
	for _, j := range res.Jobs {
		fmt.Fprintf(s.err, "dspex: job %s (%s, %d examples, %s, base %s): %s, model %s for %s\n", j.JobID, j.Key, j.Examples,
			j.Backend, j.BaseModel, j.State, j.FineTunedModel, strings.Join(j.Predictors, ", "))
	}
}

// jobLines prints the fine-tuning jobs' state changes and messages as
// they come (the JobKind and JobEventKind events):
//
//	fine-tuning job ftjob-1 (lm:dspex-sim, 12 examples, openai): running (running)
type jobLines struct {
	state map[string]string
}

func (j *jobLines) line(data any) string {
	switch d := data.(type) {
	case *finetune.JobRecord:
		if d.JobID == "" {
			if d.Error != "" {
				return fmt.Sprintf("fine-tuning job for %s not started: %s", d.Key, d.Error)
			}
			return ""
		}
		st := d.State
		if d.ProviderState != "" && d.ProviderState != d.State {
			st += " (" + d.ProviderState + ")"
		}
		if j.state == nil {
			j.state = map[string]string{}
		}
		if j.state[d.JobID] == st && d.FineTunedModel == "" && d.Error == "" {
			return ""
		}
		j.state[d.JobID] = st
		line := fmt.Sprintf("fine-tuning job %s (%s, %d examples, %s, base %s): %s", d.JobID, d.Key, d.Examples, d.Backend, d.BaseModel, st)
		switch {
		case d.FineTunedModel != "":
			line += ": model " + d.FineTunedModel
		case d.Error != "":
			line += ": " + d.Error
		}
		return line
	case *finetune.JobEventInfo:
		if d.Message == "" {
			return ""
		}
		line := fmt.Sprintf("fine-tuning job %s: %s", d.JobID, d.Message)
		if len(d.Metrics) > 0 {
			keys := slices.Collect(maps.Keys(d.Metrics))
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s=%.4g", k, d.Metrics[k])
			}
			line += " (" + strings.Join(parts, ", ") + ")"
		}
		return line
	}
	return ""
}
