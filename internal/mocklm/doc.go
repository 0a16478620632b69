// Package mocklm is the DSPEx LM simulator: an OpenAI-compatible HTTP
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
package mocklm
