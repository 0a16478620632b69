package cli

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/lm/lmtest"
)

func newMockLMCommand(s *streams) *cobra.Command {
	var (
		addr, scriptPath, latency, apiKey string
		datasetInput, datasetAnswer       string
		seed                              int64
		finetuneStep                      time.Duration
		faults, models, datasets          []string
		finetuneFaults                    []string
		verbose                           bool
	)
	cmd := &cobra.Command{
		Use:   "mock-lm",
		Short: "Serve a SIMULATED language model (OpenAI-compatible, deterministic; not a real model)",
		Long: `mock-lm serves a SIMULATED language model: an OpenAI-compatible HTTP server
for tests, examples, benchmarks and demos. It is NOT a real model. Its answers
are deterministic placeholders (or scripted values, or dataset answers drawn
by a documented skill model) shaped to the fields a DSPy-style prompt asks
for; they carry no model quality, and no score measured against the
simulator says anything about a language model. Every response carries the
header "X-DSPEx-Simulator: true".

Endpoints: POST /v1/chat/completions (n, streaming, JSON mode),
POST /v1/embeddings, GET /v1/models, GET /healthz, and a simulated
fine-tuning API: POST /v1/files (purpose fine-tune, chat JSONL),
GET /v1/files/{id}, POST and GET /v1/fine_tuning/jobs, GET
/v1/fine_tuning/jobs/{id} and its /events, POST .../{id}/cancel. A job
validates, queues, runs three training steps and succeeds, one
--finetune-step apart (suffix "fail" makes it fail); its model
ft:BASE:SUFFIX:JOBID then answers --dataset questions with a documented
skill bonus (a simulator rule, not a claim about fine-tuning).
--finetune-fault takes --fault's specs (429, 500, 502, 503, hang, reset) for
the fine-tuning endpoints alone.

On start it prints one line to stdout, "dspex mock-lm listening on
http://ADDR/v1" (with the real port when --addr ends in :0), and serves until
interrupted.

--latency SPEC:  50ms | fixed:50ms | uniform:MIN,MAX | normal:MEAN,STDDEV |
                 lognormal:MEDIAN,SIGMA   (Go durations, e.g. normal:100ms,20ms)
--fault SPEC:    KIND[:OPTION,...], repeatable. KIND is 429, 500, 502, 503,
                 hang (alias timeout), reset, malformed, truncated or
                 badfields. Options: a bare rate or rate=R (0..1), first=N
                 (the first N requests), retry_after=DURATION (429 and 503).
                 Without rate or first every request gets the fault.
                 Examples: 429:0.1  500:first=3  429:0.2,retry_after=2s
--script FILE:   YAML rules: [{match, match_any_message, fields, raw, times}]
--dataset FILE:  JSONL examples, {"question": ..., "answer": ..., "topic": ...}
                 per line (repeatable: give the train and the dev split). A
                 prompt asking one of its questions is answered correctly with
                 a probability p set by a skill model: p rises with correct
                 demos on the question's topic and with instruction cues
                 (answer format, topic words, reasoning), falls with wrong
                 demos, and is drawn per prompt, so the same prompt always
                 gets the same answer; a wrong answer is another example's.
                 See docs/simulated-lm.md. Script rules come first.

Latency and faults are drawn from RNGs seeded by --seed and the request's
sequence number, so the same run of requests sees the same delays and faults.
Scores measured against --dataset answers measure the prompt and the
optimizer against the skill model, never a language model.`,
		Example: `  dspex mock-lm --addr 127.0.0.1:0
  dspex mock-lm --seed 7 --latency normal:100ms,20ms --fault 429:0.1 --fault 500:first=2
  dspex mock-lm --script answers.yaml --model gpt-4o-mini --api-key sk-test
  dspex mock-lm --dataset examples/capitals/train.jsonl --dataset examples/capitals/dev.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if finetuneStep <= 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("--finetune-step %s must be positive", finetuneStep)}
			}
			cfg := lmtest.Config{Seed: seed, Models: models, APIKey: apiKey, FineTuneStep: finetuneStep}
			var err error
			if cfg.Latency, err = lmtest.ParseLatency(latency); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			for _, spec := range faults {
				f, err := lmtest.ParseFault(spec)
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				cfg.Faults = append(cfg.Faults, f)
			}
			for _, spec := range finetuneFaults {
				f, err := lmtest.ParseFault(spec)
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				cfg.FineTuneFaults = append(cfg.FineTuneFaults, f)
			}
			if scriptPath != "" {
				if cfg.Script, err = lmtest.LoadScript(scriptPath); err != nil {
					return err
				}
			}
			if len(datasets) > 0 {
				opts := lmtest.DatasetOptions{InputKey: datasetInput, AnswerKey: datasetAnswer}
				if cfg.Dataset, err = lmtest.LoadDatasetFiles(datasets, opts); err != nil {
					return err
				}
			}
			if verbose {
				cfg.Logger = slog.New(slog.NewTextHandler(s.err, nil))
			}
			srv, err := lmtest.New(cfg)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			var printErr error
			err = srv.ListenAndServe(cmd.Context(), addr, func(url string) {
				if _, printErr = fmt.Fprintf(s.out, "dspex mock-lm listening on %s\n", url); printErr != nil {
					_ = srv.Close()
					return
				}
				flush(s.out)
				fmt.Fprintf(s.err, "dspex mock-lm: this is a SIMULATOR, not a real model (seed %d, latency %s%s%s)\n",
					seed, cfg.Latency, faultSummary(cfg.Faults), datasetSummary(cfg.Dataset))
			})
			if err != nil {
				return err
			}
			if printErr != nil {
				return fmt.Errorf("mock-lm: write listening line: %w", printErr)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "127.0.0.1:8089", "host:port to listen on (port 0 picks a free port)")
	fl.StringVar(&scriptPath, "script", "", "YAML file of scripted answers")
	fl.StringArrayVar(&datasets, "dataset", nil, "JSONL file of examples to answer with the skill model (repeatable)")
	fl.StringVar(&datasetInput, "dataset-input", lmtest.DefaultDatasetInput, "input key of --dataset examples, matched against the prompt's input field")
	fl.StringVar(&datasetAnswer, "dataset-answer", lmtest.DefaultDatasetAnswer, "answer key of --dataset examples, the output field answered")
	fl.Int64Var(&seed, "seed", 0, "seed for placeholder answers, latency and faults")
	fl.StringVar(&latency, "latency", "", "added latency: DURATION or DIST:ARGS (fixed, uniform, normal, lognormal)")
	fl.StringArrayVar(&faults, "fault", nil, "inject a fault, KIND[:OPTION,...] (repeatable)")
	fl.StringArrayVar(&models, "model", nil, "model name to list in /v1/models besides dspex-sim (repeatable)")
	fl.StringVar(&apiKey, "api-key", "", "require this key as \"Authorization: Bearer KEY\"")
	fl.DurationVar(&finetuneStep, "finetune-step", lmtest.DefaultFineTuneStep, "how long each stage of a simulated fine-tuning job lasts")
	fl.StringArrayVar(&finetuneFaults, "finetune-fault", nil, "inject a fault into the fine-tuning endpoints, KIND[:OPTION,...] (repeatable)")
	fl.BoolVarP(&verbose, "verbose", "v", false, "log each request to stderr")
	return cmd
}

// flush pushes buffered output out, for writers that buffer.
func flush(w any) {
	if f, ok := w.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
}

func faultSummary(faults []lmtest.Fault) string {
	if len(faults) == 0 {
		return ", no faults"
	}
	parts := make([]string, len(faults))
	for i, f := range faults {
		parts[i] = f.String()
	}
	return ", faults " + strings.Join(parts, " ")
}

func datasetSummary(d *lmtest.Dataset) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf(", dataset of %d examples", d.Len())
}
