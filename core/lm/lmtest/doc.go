// Package lmtest is the DSPEx LM simulator: an OpenAI-compatible HTTP
// server that answers DSPy-style prompts deterministically, so that tests,
// examples, benchmarks and demos run without a network or a real model.
// It is a simulator: its answers carry no model quality, and no figure
// measured against it says anything about a language model.
//
// It reads prompts as text (never through DSPEx's adapter code, so it also
// checks that code from the outside): the "Your output fields are:" list
// of the system message gives the output fields and their types, the
// structure section says whether outputs are [[ ## field ## ]] sections
// (ChatAdapter) or a JSON object (JSONAdapter), and the last user message
// holds the inputs.
//
// # Testing a program
//
// As net/http/httptest starts a server for a test, NewServer starts a
// simulator for one, configured by options, and closes it when the test
// ends:
//
//	func TestCapital(t *testing.T) {
//		sim := lmtest.NewServer(t, lmtest.WithScript(&lmtest.Script{Rules: []lmtest.Rule{
//			{Match: "France", Fields: map[string]any{"capital": "Paris"}},
//		}}))
//		model, _ := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: sim.URL(), APIKey: "unused"})
//		// run the program with module.WithLM(ctx, model), check its answer,
//		// and sim.Requests() or sim.Stats() for what it sent
//	}
//
// WithDataset answers from a question set with a skill model (something
// for an optimizer to improve), WithLatency and WithFaults add delays and
// failures, WithConfig sets everything at once. Start, New and
// ListenAndServe serve it outside a test (the `dspex mock-lm` command uses
// them).
//
// # Endpoints
//
//   - POST /v1/chat/completions: n choices, streaming (server-sent events
//     in OpenAI's chunk format, with a usage chunk when
//     stream_options.include_usage is set), stop sequences and max_tokens
//     (or max_completion_tokens) are honoured.
//   - POST /v1/embeddings: a hashed bag-of-words vector per input text
//     (DefaultEmbeddingDims dimensions unless "dimensions" is given).
//   - GET /v1/models and /v1/models/{id}: DefaultModel and Config.Models,
//     owned_by "dspex-simulator". Requests may name any model.
//   - GET /healthz: 200, needing no API key.
//   - The fine-tuning API (see Fine-tuning below): POST /v1/files, GET
//     /v1/files/{id}, POST and GET /v1/fine_tuning/jobs, GET
//     /v1/fine_tuning/jobs/{id} and /events, POST .../{id}/cancel.
//
// Every response carries the header "X-DSPEx-Simulator: true". Errors use
// OpenAI's body, {"error": {"message", "type", "param", "code"}}: 400 for
// a body that is not valid JSON or a bad field, 401 for a missing or wrong
// API key (when Config.APIKey is set), 404 for unknown paths, 405 for a
// wrong method, 413 for a body over Config.MaxBodyBytes.
//
// # Answers
//
// In chat mode the completion is every output field in prompt order,
//
//	[[ ## reasoning ## ]]
//	...
//
//	[[ ## answer ## ]]
//	...
//
//	[[ ## completed ## ]]
//
// with values formatted as DSPy formats them: strings raw, numbers and
// bools as Python's str() (0.5, True), lists, dicts and objects as JSON.
// JSON mode (the system message says "Outputs will be a JSON object", or
// the request has a json_object or json_schema response_format) answers
// one JSON object holding every output field with typed values. A prompt
// without an output field list gets a plain sentence ("This is a simulated
// response ..."), or, in JSON mode, the object generated from the
// response_format schema or {"response": "..."}.
//
// Unscripted fields get placeholders of their type:
//
//   - str (and Any): a short sentence naming the field, quoting the first
//     few words of the first input field, and carrying a 4-hex-digit tag;
//   - int: 1..10; float: 0.00..1.00 in steps of 0.01 (JSON-schema minimum
//     and maximum are honoured); bool: True or False;
//   - list[T]: 1 to 3 items; tuple: one item per element type;
//     dict[str, T]: 1 or 2 entries with keys key_1, key_2;
//   - Literal[...]: one of the choices; Optional[T] (Union[T, NoneType]):
//     a T, never None;
//   - objects: every property of the JSON schema in the field's note, with
//     $ref resolved into $defs (nesting is cut off at a small depth, so
//     recursive models end).
//
// Placeholders come from an RNG seeded by a hash of the model name, the
// messages and the response format, by Config.Seed, and by the request's
// seed plus the choice index (a missing seed counts as 0). So the same
// request with the same seeds gets a byte-identical body (ids are hashes
// and "created" is fixed), choice i of a request with seed s equals
// choice 0 of the request with seed s+i, and a different seed gives
// different placeholders.
//
// A Script replaces placeholders with given values (Rule.Fields) or the
// whole completion with given text (Rule.Raw) for requests it matches.
//
// # Dataset mode and the skill model
//
// Config.Dataset (LoadDataset, `dspex mock-lm --dataset FILE`) holds
// examples with a question, a gold answer and an optional topic. A request
// is answered from it when no script rule matches, the system message asks
// for the answer field, and the last user message's question section
// (without the "Respond with ..." paragraph DSPy appends) equals an
// example's question after trimming. Each choice is then correct with
// probability p: the answer field gets the gold answer, or else a
// plausible wrong one, another example's answer on the same topic (any
// topic when the topic has none that differs), never one equal to the
// gold answer. Other output fields that the answering example has in its
// file line get their values from it, "reasoning" gets a sentence leading
// to the answer given, and the rest get placeholders. Other requests are
// answered as before.
//
// p comes from the skill model (see Skill and DefaultSkill for the
// defaults in brackets):
//
//	logit = Base (-0.5)
//	      + DemoWeight (0.3)         · r
//	      + OtherDemoWeight (0.1)    · o
//	      − WrongDemoWeight (0.4)    · w
//	      + InstructionWeight (0.7)  · q
//	      + ReasoningBonus (0.2)     if the prompt asks for a "reasoning" output
//	p = min(MaxP (0.95), max(MinP (0.05), 1/(1+exp(−logit))))
//
// Demos are the user/assistant message pairs before the last user
// message; a demo's question is its user message's question section and
// its answer the assistant's answer (a [[ ## answer ## ]] section or a
// JSON object's key; DSPy's "Not supplied" filler is no answer). A demo is
// correct when its question is a dataset example and its answer equals
// that example's gold answer, compared lower-cased and trimmed with inner
// whitespace collapsed; wrong when the question is known but the answer
// differs; and counts for nothing when its question is unknown or it has
// no answer. r counts correct demos on the asked question's topic
// (examples without a topic share the topic ""), o correct demos on other
// topics; r + o together count at most MaxDemos (4), relevant ones first.
// w counts every wrong demo. A demo of the asked question itself with the
// gold answer sets p = MaxP: the answer is in the prompt.
//
// q, the instruction quality, reads the text after "your objective is:"
// in the system message, lower-cased, with `backticked` spans removed
// (DSPy's default "Given the fields `question`, produce the fields
// `answer`." scores 0), matching whole words with plural endings ignored:
//
//	format cue    (FormatCueWeight 0.4):    one word, single word, few words, short, brief,
//	                                        concise, exact, precise, only the answer, nothing else, ...
//	task cue      (TaskCueWeight 0.4):      a word of the asked example's topic name (3+ letters),
//	                                        or a DatasetOptions.TopicCues word for it or for ""
//	reasoning cue (ReasoningCueWeight 0.2): step by step, think carefully, think through,
//	                                        carefully, reason, double check, verify
//
// q is the sum of the categories matched (0..1); FormatCues and
// ReasoningCues list the phrases. With the defaults a bare prompt answers
// correctly with p ≈ 0.38 (0.43 with chain of thought), and four correct
// demos on the topic plus an instruction with all three cues reach
// p ≈ 0.80 (0.83). Dataset.Assess shows the terms for given messages.
//
// The draw is deterministic: choice i uses u, the first draw of an RNG
// seeded by a hash of Config.Seed and every message's role and content,
// and by the request's seed plus i, and is correct iff u < p; the wrong
// answer and the reasoning sentence come from the same RNG. So the same
// prompt always gets the same answer, a prompt with other demos or other
// instructions draws anew, and choice i with seed s equals choice 0 with
// seed s+i. Stats counts DatasetHits, DatasetAnswers and DatasetCorrect;
// RecordedRequest.Example and Correct show each request's draw.
//
// # The proposer behaviour
//
// In dataset mode the simulator also answers an instruction optimizer's
// proposer prompts (DSPy's GenerateSingleModuleInstruction, whose output
// is proposed_instruction, and the dataset and program descriptions)
// from what the prompt shows: descriptions quote the dataset questions
// seen, one per topic; a proposed instruction names the topics of the
// questions shown and carries the skill model's cue categories that its
// tip input gives, some of them decided by a hash of Config.Seed, the
// messages and the request's seed plus the choice's index (see
// ProposedCues and docs/simulated-lm.md). Different tips, demos and
// choices give instructions of different quality; the same request always
// the same ones. Stats counts ProposerHits.
//
// # Fine-tuning
//
// The simulator serves OpenAI's files and fine-tuning job endpoints. It
// trains nothing: an uploaded file is checked (ParseTrainingFile: chat
// JSONL, a 400 naming the bad line) and summarised, and a job follows a
// timeline of Config.FineTuneStep steps (DefaultFineTuneStep): one
// validating its file, one queued, FineTuneTrainingSteps running (a
// metrics event each), then succeeded with the model ft:BASE:SUFFIX:JOBID.
// Suffix FailSuffix ("fail") fails the job after its first training step;
// a cancel stops it where it is. Stats counts Files and FineTuneJobs;
// FineTuneJobs lists the jobs.
//
// A succeeded job's model answers dataset questions with a bonus in the
// skill model, Skill.TunedWeight per distinct dataset question the
// training file answered correctly (at most Skill.TunedMaxExamples): a
// documented simulator rule, never a claim about real fine-tuning. The
// answer draw does not depend on the model, so every question the base
// model gets right the tuned model gets right too.
//
// # Token usage
//
// Usage is an estimate, not a tokenizer: a text of c characters (Unicode
// code points) counts as ceil(c/4) tokens, at least 1. prompt_tokens counts
// all message contents together; completion_tokens sums the choices;
// total_tokens is their sum. max_tokens applies the same rule: a longer
// completion is cut to 4·max_tokens characters with finish_reason
// "length".
//
// # Latency and faults
//
// Config.Latency delays every model request (see ParseLatency for the
// spec syntax); Config.Faults fail some of them (see ParseFault and
// Fault). Both draw from RNGs seeded by Config.Seed and the request's
// sequence number, so a given order of requests sees the same delays and
// faults on every run. Sequence numbers count valid model requests (chat
// completions and embeddings together) from 1. Waits end early when the
// client goes away or the server closes. Faults are decided before
// scripts, so a request failed with an error status does not use up a
// rule's Times.
package lmtest
