package event

import "time"

// Payloads. They hold plain data (maps, slices, strings, numbers) so that
// this package needs nothing else of DSPEx and subscribers can encode them
// as JSON.

// RunInfo describes a run: a CLI command, an evaluation, an optimization.
type RunInfo struct {
	// Name is what is running ("run", "eval", "optimize").
	Name string `json:"name"`
	// Program identifies the program (its file, or a description).
	Program string `json:"program,omitempty"`
	// Meta holds command-specific details (arguments, data file).
	Meta map[string]any `json:"meta,omitempty"`
	// Error is set on RunEnd when the run failed.
	Error string `json:"error,omitempty"`
	// Totals are set on RunEnd: LM calls, cache hits, tokens, cost.
	Calls            int     `json:"calls,omitempty"`
	CacheHits        int     `json:"cache_hits,omitempty"`
	PromptTokens     int     `json:"prompt_tokens,omitempty"`
	CompletionTokens int     `json:"completion_tokens,omitempty"`
	CostUSD          float64 `json:"cost_usd,omitempty"`
	CostUnknownCalls int     `json:"cost_unknown_calls,omitempty"`
}

// ModuleCall is a module's Forward: on ModuleStart its inputs, on ModuleEnd
// also its outputs or error.
type ModuleCall struct {
	// Module is the module's type ("Predict", "ChainOfThought").
	Module string `json:"module"`
	// Signature is the signature in string form, when the module has one.
	Signature string         `json:"signature,omitempty"`
	Inputs    map[string]any `json:"inputs,omitempty"`
	Outputs   map[string]any `json:"outputs,omitempty"`
	Error     string         `json:"error,omitempty"`
	Duration  time.Duration  `json:"duration,omitempty"`
}

// Message is one chat message of an LM call.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// LMCall is one LM call: on LMStart the request, on LMEnd also the response
// or error. The adapter's LM span publishes both, LMEnd from the response
// and the call's lm.CallStats (waits, attempts, cost).
type LMCall struct {
	Model    string         `json:"model"`
	Adapter  string         `json:"adapter,omitempty"`
	Messages []Message      `json:"messages,omitempty"`
	Params   map[string]any `json:"params,omitempty"`
	// Completions are the response's choices.
	Completions []string `json:"completions,omitempty"`
	// FinishReasons are the choices' finish reasons, in the same order
	// ("stop"; "length" for one cut off by max_tokens).
	FinishReasons    []string      `json:"finish_reasons,omitempty"`
	PromptTokens     int           `json:"prompt_tokens,omitempty"`
	CompletionTokens int           `json:"completion_tokens,omitempty"`
	CostUSD          float64       `json:"cost_usd,omitempty"`
	CostKnown        bool          `json:"cost_known,omitempty"`
	Latency          time.Duration `json:"latency,omitempty"`
	QueueWait        time.Duration `json:"queue_wait,omitempty"`
	// RateLimitWait is how long the rate limiter held the call back.
	RateLimitWait time.Duration `json:"rate_limit_wait,omitempty"`
	CacheHit      bool          `json:"cache_hit,omitempty"`
	Attempts      int           `json:"attempts,omitempty"`
	Error         string        `json:"error,omitempty"`
	// ErrorKind is the error's class ("rate limited", "timeout"...).
	ErrorKind string `json:"error_kind,omitempty"`
}

// LMRetryInfo is a failed attempt about to be retried.
type LMRetryInfo struct {
	Model   string        `json:"model"`
	Attempt int           `json:"attempt"`
	Error   string        `json:"error"`
	Wait    time.Duration `json:"wait"`
}

// LMWait is time a call spent waiting for a pool slot or the rate limiter.
type LMWait struct {
	Model string        `json:"model"`
	Wait  time.Duration `json:"wait"`
}

// BreakerChange is a circuit breaker changing state.
type BreakerChange struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// ParseFailureInfo is an LM answer an adapter could not read (and, for
// AdapterFallback, the retry with another adapter it caused).
type ParseFailureInfo struct {
	Adapter string `json:"adapter"`
	// Fallback names the adapter tried next (AdapterFallback only).
	Fallback string `json:"fallback,omitempty"`
	Field    string `json:"field,omitempty"`
	Error    string `json:"error"`
	Raw      string `json:"raw"`
}

// DemoKeysInfo is a demo holding keys its predictor's signature lacks:
// the demo is used, the keys are left out of the prompt (as DSPy does).
type DemoKeysInfo struct {
	// Signature is the predictor's signature, e.g. "question -> answer".
	Signature string `json:"signature"`
	// Demo is the demo's position among the predictor's demos, from 1.
	Demo int `json:"demo"`
	// Keys are the demo's keys the signature lacks, in the demo's order.
	Keys []string `json:"keys"`
}

// ProgressInfo reports how far a long command has got.
type ProgressInfo struct {
	Label string `json:"label"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
	// Errors counts items that failed so far.
	Errors int `json:"errors,omitempty"`
	// Score is a running score, when there is one.
	Score *float64 `json:"score,omitempty"`
}

// EvalExampleInfo is one evaluated example.
type EvalExampleInfo struct {
	Index      int            `json:"index"`
	Example    map[string]any `json:"example,omitempty"`
	Prediction map[string]any `json:"prediction,omitempty"`
	Score      float64        `json:"score"`
	Feedback   string         `json:"feedback,omitempty"`
	Error      string         `json:"error,omitempty"`
	Duration   time.Duration  `json:"duration,omitempty"`
}

// OptimizerInfo starts or ends an optimization.
type OptimizerInfo struct {
	Optimizer string         `json:"optimizer"`
	Config    map[string]any `json:"config,omitempty"`
	BestScore *float64       `json:"best_score,omitempty"`
	Error     string         `json:"error,omitempty"`
	// ExtraCalls counts LM calls beyond those a sequential run of the
	// optimizer makes (concurrent bootstrapping stopped by its error
	// bound), cancelled ones included; set on OptimizerEnd.
	ExtraCalls int `json:"extra_calls,omitempty"`
}

// OptimizerTrialInfo is a candidate program proposed or evaluated.
type OptimizerTrialInfo struct {
	Optimizer string `json:"optimizer"`
	Trial     int    `json:"trial"`
	// Candidate describes the candidate (instructions and demos per
	// predictor), as JSON-ready data.
	Candidate map[string]any `json:"candidate,omitempty"`
	// Score is nil for a proposal not yet evaluated.
	Score     *float64 `json:"score,omitempty"`
	BestScore *float64 `json:"best_score,omitempty"`
	// Minibatch reports a score over part of the validation set.
	Minibatch bool `json:"minibatch,omitempty"`
}

// OptimizerDemoSetInfo is a candidate demo set an optimizer built for one
// predictor.
type OptimizerDemoSetInfo struct {
	Optimizer string `json:"optimizer"`
	// Predictor is the predictor's dotted name; Index the candidate's
	// number among its demo sets (the value a trial picks).
	Predictor string `json:"predictor"`
	Index     int    `json:"index"`
	// Source says how the set was made (e.g. "zero_shot", "labeled",
	// "bootstrap", "bootstrap_shuffled").
	Source string `json:"source,omitempty"`
	// Demos are the demos' fields, as JSON-ready data.
	Demos []any `json:"demos"`
}

// OptimizerInstructionInfo is a candidate instruction an optimizer
// proposed for one predictor.
type OptimizerInstructionInfo struct {
	Optimizer string `json:"optimizer"`
	// Predictor is the predictor's dotted name; Index the candidate's
	// number among its instructions (the value a trial picks).
	Predictor   string `json:"predictor"`
	Index       int    `json:"index"`
	Instruction string `json:"instruction"`
	// Tip and RolloutID are what the proposal drew (MIPROv2).
	Tip       string `json:"tip,omitempty"`
	RolloutID string `json:"rollout_id,omitempty"`
	// Fallback is why the original instruction stands in for the proposal.
	Fallback string `json:"fallback,omitempty"`
}

// SubscriberProblem reports a subscriber that panicked or stalled.
type SubscriberProblem struct {
	Subscriber string `json:"subscriber"`
	Problem    string `json:"problem"`
	// Dropped counts events that subscriber lost.
	Dropped int64 `json:"dropped"`
}
