// Package finetune is DSPy's BootstrapFinetune in Go, over the fine-tuning
// plugin (the "finetune" capability: the Python plugin
// dspex_plugins.finetune, serving the FineTuner service of
// bridge/proto). Go does the bootstrapping, the training data and the
// switch of models; the plugin runs the training job on a backend chosen
// in configuration ("openai": any OpenAI-compatible files and fine-tuning
// API; "local": Hugging Face transformers on a local model directory).
// From the command line it is `dspex optimize --optimizer finetune`
// (docs/cli.md); docs/finetune.md describes the whole flow.
//
// # What follows DSPy 3.4.1
//
//   - The teacher (default: the student) runs every training example,
//     concurrently, with its predictor calls recorded (Bootstrap, DSPy's
//     bootstrap_trace_data); a trace passes when the metric's score is not
//     0 (DSPy keeps `if d["score"]`).
//   - Each step of each passing trace is formatted by the chat adapter as
//     ChatAdapter.format_finetune_data does — the call's messages (system,
//     a user/assistant pair per demo of the predictor, the user message)
//     and the step's outputs as the assistant's message — the lines are
//     shuffled with random.Random(0) (TrainingData), and the file is
//     written as DSPy's save_data writes it with orjson (JSONL).
//     TestDSPyTrainingFileGolden checks the file byte for byte against one
//     DSPy wrote for the same task (testdata/golden/gen_dspy_finetune.py).
//   - Multitask (the default) starts one job per LM, on every step of every
//     passing trace; PerPredictor one per predictor. On success each
//     predictor gets its own LM: its endpoint sending to the fine-tuned
//     model (WithModel). ExcludeDemos leaves the demos out of the data and
//     off the tuned student.
//
// # What differs
//
//   - DSPy's per-predictor data takes the step at the predictor's index in
//     each trace (it assumes each predictor runs once, in order); DSPEx
//     takes the steps of that predictor, which is the same when it holds.
//   - DSPy starts the jobs one by one and waits for each; DSPEx starts and
//     follows them concurrently.
//   - A run that fails is dropped (DSPy's Evaluate scores it
//     failure_score, which never passes).
//
// # Durability
//
// Every job is started with an idempotency key derived from the run id,
// the job's key (its LM or predictor), the base model, the backend and the
// training data's hash (IdempotencyKey): starting it again returns the same
// job. Each start and state change is a JobKind event, which the trace
// store keeps with the job id, backend, options (less secrets), base model
// and state. When the plugin dies mid-job, the supervisor restarts it and
// the job is looked up by id (GetJob) and watched again; a resumed run
// (Config.Resume, read with JobsFromEvents) follows its jobs by id — the
// record of the same job key — without bootstrapping again when every job
// has one (Result.Resumed). A job is never started twice. Cancelling the context cancels the running jobs.
package finetune
