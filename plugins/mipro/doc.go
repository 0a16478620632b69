// Package mipro is DSPy's MIPROv2 optimizer in Go: it bootstraps candidate
// demo sets, has the prompt model propose grounded instructions (as DSPEx
// programs), and searches the combinations of instructions and demo sets
// with a Bayesian sampler — an Optuna study held by the Python sampler
// plugin (plugins/sampler) — evaluating every candidate in Go. From the
// command line it is `dspex optimize --optimizer mipro` (docs/cli.md).
//
// # What follows DSPy 3.4.1
//
//   - The data split without a valset (the last 80%, at most 1000, validate:
//     Split), the auto modes (light/medium/heavy: 6/12/18 candidates, half
//     of them instructions unless zero-shot, a valset sample of at most
//     100/300/1000, minibatches only for a valset over 50) and the trial
//     count max(2·M·log2 N, 1.5·N) (NumTrialsFor).
//   - One random.Random(seed) (core/pyrand; seed 9 by default) drawn in
//     DSPy's order: the auto valset sample, each shuffled demo set's shuffle
//     and size, each proposal's tip and rollout id, each minibatch.
//   - The demo sets: zero-shot, labeled-only (LabeledFewShot), an
//     unshuffled BootstrapFewShot, then shuffled bootstraps
//     (core/teleprompt's public API).
//   - The proposer: a dataset summary (observations on batches of 10
//     training examples, at most 10 batches, until the model has said
//     "COMPLETE" five times; then a summary of them), and per
//     proposal the program and module described and an instruction
//     generated, with up to 3 bootstrapped demos and a random tip, on its
//     own rollout id at InitTemperature. The signatures are DSPy's word for
//     word (TestPromptsMatchDSPy compares the prompts with DSPy's).
//   - The search: the unmodified program fully evaluated and added to the
//     study as trial 0; per trial one instruction and one demo set per
//     predictor, named "<i>_predictor_instruction" and "<i>_predictor_demos"
//     with choices "0".."n-1"; a minibatch evaluation told to the study;
//     every MinibatchFullEvalSteps trials and at the end, the combination
//     with the best mean minibatch score not yet fully evaluated is
//     evaluated on the whole valset and added as a trial; the best full
//     score wins. A failed evaluation scores 0.
//
// # What differs
//
//   - DSPy's program-aware proposer reads the program's Python source; Go
//     programs have none, so the proposer gets Python-like pseudo-code of
//     each predictor's signature. For a lone Predict or ChainOfThought,
//     whose source DSPy does not read, both send "\n\n".
//   - DSPy proposes an instruction for candidate 0 and then overwrites it
//     with the original; DSPEx draws the same random numbers but makes no
//     calls for it. A proposal that fails or comes back empty is replaced
//     by the original instruction and recorded (Proposal.Fallback).
//   - When every sampled combination has been fully evaluated, a full
//     evaluation step does nothing (DSPy raises); a space with fewer
//     combinations than full evaluations is refused up front (ErrSpace).
//   - DSPy's full evaluation adds its trial while the last minibatch
//     trial is still running, and tells that trial afterwards; DSPEx tells
//     first, then adds. The study's trials are the same under the same
//     numbers, and the sampler asks the same next trials.
//   - TrialsInFlight > 1 asks the sampler for that many trials before
//     telling any, evaluates them concurrently and tells them in trial
//     order; a batch never crosses a full evaluation. With 1 (the default)
//     the sequence is DSPy's.
//
// # Sampler restarts
//
// Go keeps the trial log (every trial's parameters and, once evaluated, its
// value). When the plugin restarts (calls fail while it is down, then with
// sampler.ErrNotFound), the study is rebuilt from the log
// (as sampler.Client.Rebuild does: evaluated trials complete, trials still
// being evaluated running) and the call is tried again. With the plugin's default
// RNG rule the rebuilt study asks what the lost one would have: no trial is
// lost or repeated, and the run ends as an uninterrupted one.
//
// # Round trips
//
// With a FusedSampler (sampler.Client is one) a trial's tell, and a full
// evaluation's add_trial, ride on the next ask (sampler.Client.AskAfter);
// those left at the end on one last replay: the study gets the same calls
// in the same order, in half the round trips (12 instead of 24 for auto
// light). After a restart the log's replay rides on the next call too.
//
// # DSPy's own trial sequence
//
// WithSamplerRNG(sampler.RNGContinuous) (SamplerOptions "rng":
// "continuous"; `dspex optimize --sampler-rng continuous`) has the plugin
// draw from one TPE sampler seeded once, as DSPy does: with the same seed,
// data and LM answers the run asks, scores and returns what DSPy 3.4.1's
// MIPROv2 does (TestDSPyMIPROParity, against a golden that
// testdata/golden/mipro/gen_dspy_mipro.py records from DSPy; `make
// golden-dspy`). Such a study cannot be rebuilt from its trials, so the
// search also logs every Ask, Tell and Replay it made, and after a plugin
// restart makes them again (sampler.Redrive, which checks that each Ask
// comes back as logged); a resumed run asks its logged sampled trials
// again instead of replaying them. Both then go on as an uninterrupted run.
// The trial rule stays the default: its rebuild needs no call log and
// replays faster, and its trials differ from DSPy's only in which random
// draws TPE makes.
//
// # Resuming an interrupted run
//
// Every trial is an optimizer.trial event whose candidate record holds the
// trial's kind, parameters, batch size and the program's state; the trace
// store keeps them. TrialFromRecord reads them back, and Config.Resume
// takes them: the logged trials are added to the study under their numbers
// with their scores (sampled ones as asked, then told, as the interrupted
// run did), the random draws are made again so that the minibatches stay in
// step, and the run goes on with the first trial not logged — as an
// uninterrupted run would, when the demo sets and proposals come out the
// same (a deterministic or cached LM).
package mipro
