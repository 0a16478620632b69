// Package adapter turns a signature, demos and inputs into chat messages,
// and an LM's completion back into typed output fields.
//
// ChatAdapter writes DSPy's "[[ ## field ## ]]" format and JSONAdapter asks
// for one JSON object; both produce, byte for byte, the messages DSPy
// produces for the same signature (see testdata/golden/adapter), so programs
// optimized with DSPy behave the same here.
//
// Every parse failure is a *ParseError carrying the raw LM text. Call falls
// back from ChatAdapter to JSONAdapter on a parse failure only — never on a
// transport or provider error.
package adapter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// Adapter formats prompts and parses completions for one output format.
// Implementations are stateless values, safe for concurrent use.
type Adapter interface {
	// Name is the adapter's class name, as DSPy spells it ("ChatAdapter").
	Name() string
	// Format builds the messages for one call: system message, demos as
	// user/assistant pairs (incomplete demos first), then the inputs.
	Format(sig *signature.Signature, demos []example.Example, inputs map[string]any) ([]lm.Message, error)
	// Parse reads one completion into the signature's output fields. Every
	// failure is a *ParseError.
	Parse(sig *signature.Signature, completion string) (map[string]any, error)
	// Prepare sets request options the format needs (such as
	// response_format) for the given model.
	Prepare(sig *signature.Signature, req *lm.Request, model lm.LM)
	// Fallback is the adapter Call repeats a call with, once, when this
	// one's completion does not parse; nil for none. ChatAdapter's is
	// JSONAdapter unless its NoFallback is set (DSPy's
	// use_json_adapter_fallback). An adapter that wraps another returns
	// the wrapped one's (an embedded Adapter does so by itself), so that
	// wrapping never loses the fallback.
	Fallback() Adapter
}

// ParseError reports an LM completion that could not be read into the
// signature's output fields.
type ParseError struct {
	// Adapter is the adapter that failed ("ChatAdapter", "JSONAdapter").
	Adapter string
	// Field is the output field that failed to parse; empty when the
	// problem is the completion's overall shape.
	Field string
	// Missing lists required output fields the completion did not contain.
	Missing []string
	// Raw is the LM's completion text, unchanged.
	Raw string
	// Err is the cause, if any.
	Err error
	// Truncated reports that the LM stopped at its token limit
	// (finish_reason "length"), which is then the likely cause; MaxTokens
	// is the request's max_tokens, 0 when the request did not set it.
	Truncated bool
	MaxTokens int
}

func (e *ParseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "adapter: %s could not parse the LM response", e.Adapter)
	switch {
	case e.Field != "":
		fmt.Fprintf(&b, ": field %q", e.Field)
		if e.Err != nil {
			b.WriteString(": " + e.Err.Error())
		}
	case len(e.Missing) > 0:
		fmt.Fprintf(&b, ": missing output fields %s", strings.Join(quoteAll(e.Missing), ", "))
	case e.Err != nil:
		b.WriteString(": " + e.Err.Error())
	}
	if e.Truncated {
		b.WriteString(`: the answer was cut off at the token limit (finish_reason "length")`)
		if e.MaxTokens > 0 {
			fmt.Fprintf(&b, " of max_tokens=%d", e.MaxTokens)
		}
		b.WriteString("; consider a larger max_tokens")
	}
	raw := e.Raw
	if len(raw) > 200 {
		raw = raw[:200] + "…"
	}
	fmt.Fprintf(&b, " (LM response: %q)", raw)
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "`" + n + "`"
	}
	return out
}

// IsParseError reports whether err is (or wraps) a *ParseError.
func IsParseError(err error) bool {
	var pe *ParseError
	return errors.As(err, &pe)
}

// Result is the outcome of Call.
type Result struct {
	// Outputs holds one field map per completion (n > 1 gives several).
	Outputs []map[string]any
	// Response is the LM's response.
	Response *lm.Response
	// Adapter names the adapter whose format succeeded (after a fallback,
	// "JSONAdapter").
	Adapter string
	// Messages are the messages that produced Outputs.
	Messages []lm.Message
	// FallbackErr is the ChatAdapter parse error that caused a fallback to
	// JSONAdapter, nil when there was none.
	FallbackErr error
	// Usage and Cost sum every LM call the result took (both, after a
	// fallback).
	Usage lm.Usage
	Cost  lm.Cost
}

// Request describes one adapter call.
type Request struct {
	Signature *signature.Signature
	Demos     []example.Example
	Inputs    map[string]any
	Params    lm.Params
	// RolloutID distinguishes otherwise identical requests (see lm.Request).
	RolloutID string
}

// Call formats the request with a, sends it to model and parses every
// completion. When parsing fails and a has a Fallback (ChatAdapter's is
// JSONAdapter), the call is repeated once with it. Errors from the LM are
// returned as they are, never retried here.
func Call(ctx context.Context, a Adapter, model lm.LM, r Request) (*Result, error) {
	res, err := call(ctx, a, model, r)
	if err == nil || !IsParseError(err) {
		return res, err
	}
	return fallback(ctx, a, model, r, res, err)
}

func call(ctx context.Context, a Adapter, model lm.LM, r Request) (*Result, error) {
	req, err := lmRequest(a, model, r)
	if err != nil {
		return nil, err
	}
	resp, stats, err := tracedComplete(ctx, a.Name(), model, req)
	if err != nil {
		return nil, err
	}
	return parseAll(ctx, a, r.Signature, req, resp, stats.Cost)
}

// lmRequest formats r with a and prepares it for model.
func lmRequest(a Adapter, model lm.LM, r Request) (*lm.Request, error) {
	msgs, err := a.Format(r.Signature, r.Demos, r.Inputs)
	if err != nil {
		return nil, err
	}
	req := &lm.Request{Messages: msgs, Params: r.Params, RolloutID: r.RolloutID}
	a.Prepare(r.Signature, req, model)
	return req, nil
}

// parseAll reads every completion of resp, the answer to req, into a
// Result. A failure (no completions, or one that does not parse) is
// published as a parse failure and returned with the Result so far; when
// the completion that failed was cut off by the token limit, the
// *ParseError says so.
func parseAll(ctx context.Context, a Adapter, sig *signature.Signature, req *lm.Request, resp *lm.Response, cost lm.Cost) (*Result, error) {
	res := &Result{Response: resp, Adapter: a.Name(), Messages: req.Messages, Usage: resp.Usage, Cost: cost}
	if len(resp.Choices) == 0 {
		err := &ParseError{Adapter: a.Name(), Err: errors.New("the LM returned no completions")}
		publishParseFailure(ctx, event.ParseFailure, err, "")
		return res, err
	}
	for _, c := range resp.Choices {
		out, err := a.Parse(sig, c.Text)
		if err != nil {
			var pe *ParseError
			if c.FinishReason == lm.FinishLength && errors.As(err, &pe) {
				pe.Truncated = true
				if req.MaxTokens != nil {
					pe.MaxTokens = *req.MaxTokens
				}
			}
			publishParseFailure(ctx, event.ParseFailure, err, "")
			return res, err
		}
		res.Outputs = append(res.Outputs, out)
	}
	return res, nil
}

// fallback repeats a call once with a's Fallback after a failed to parse:
// perr is the parse error and res the failed call's result, whose usage
// and cost the new result adds. When a has no fallback it returns res and
// perr as they are.
func fallback(ctx context.Context, a Adapter, model lm.LM, r Request, res *Result, perr error) (*Result, error) {
	fb := a.Fallback()
	if fb == nil {
		return res, perr
	}
	publishParseFailure(ctx, event.AdapterFallback, perr, fb.Name())
	res2, err := call(ctx, fb, model, r)
	if res2 != nil {
		res2.FallbackErr = perr
		if res != nil {
			res2.Usage = res2.Usage.Add(res.Usage)
			res2.Cost = res2.Cost.Add(res.Cost)
		}
	}
	return res2, err
}

// tracedComplete makes the LM call inside an LM span, publishing LMStart and
// LMEnd (model, messages, completions, tokens, cost, latency, cache hit,
// attempts) when the context has an event bus.
func tracedComplete(ctx context.Context, adapterName string, model lm.LM, req *lm.Request) (*lm.Response, lm.CallStats, error) {
	return tracedCall(ctx, adapterName, model, req, func(ctx context.Context) (*lm.Response, error) {
		return model.Complete(ctx, req)
	})
}

// tracedCall runs an LM call (run) inside an LM span. It is the one
// publisher of an LM call's LMStart and LMEnd: it gives the call a fresh
// lm.CallStats, which the execution layers fill in (queue and rate-limit
// waits, attempts, cost), and publishes LMEnd from that record and the
// response (completions, finish reasons, model, usage, provider latency,
// cache hit) — or, for a failed call, the error (its attempts: lm.Attempts).
// The record is kept even without a bus: it holds the call's cost.
// Waits and retries are also published as they happen, by the layers' hooks
// (lm.EventHooks): the only other source of an LM call's events.
func tracedCall(ctx context.Context, adapterName string, model lm.LM, req *lm.Request, run func(context.Context) (*lm.Response, error)) (*lm.Response, lm.CallStats, error) {
	ctx, stats := lm.WithCallStats(ctx)
	if event.BusFrom(ctx) == nil {
		resp, err := run(ctx)
		return resp, *stats, err
	}
	ctx, span := event.StartSpan(ctx)
	name := req.Model
	if name == "" {
		name = model.Model()
	}
	call := &event.LMCall{Model: name, Adapter: adapterName, Params: paramsMap(req)}
	if event.Enabled(ctx, event.LMStart) || event.Enabled(ctx, event.LMEnd) {
		call.Messages = make([]event.Message, len(req.Messages))
		for i, m := range req.Messages {
			call.Messages[i] = event.Message{Role: m.Role, Content: m.Content}
		}
	}
	event.Publish(ctx, event.LMStart, span, call)
	start := time.Now()
	resp, err := run(ctx)
	end := *call
	if err != nil {
		end.Error = err.Error()
		end.ErrorKind = lm.ErrorKind(err)
		end.Attempts = lm.Attempts(err)
		end.Latency = time.Since(start)
	} else {
		end.Completions = make([]string, len(resp.Choices))
		end.FinishReasons = make([]string, len(resp.Choices))
		for i, c := range resp.Choices {
			end.Completions[i], end.FinishReasons[i] = c.Text, c.FinishReason
		}
		if resp.Model != "" {
			end.Model = resp.Model
		}
		end.PromptTokens, end.CompletionTokens = resp.Usage.PromptTokens, resp.Usage.CompletionTokens
		end.Latency, end.CacheHit = resp.Latency, resp.CacheHit
		if end.Latency == 0 {
			end.Latency = time.Since(start)
		}
		end.CostUSD, end.CostKnown = stats.Cost.USD, stats.Cost.Known()
		end.QueueWait, end.RateLimitWait, end.Attempts = stats.QueueWait, stats.RateLimitWait, stats.Attempts
	}
	event.Publish(ctx, event.LMEnd, span, &end)
	return resp, *stats, err
}

// paramsMap lists the sampling parameters that were set.
func paramsMap(req *lm.Request) map[string]any {
	p := map[string]any{}
	if req.Temperature != nil {
		p["temperature"] = *req.Temperature
	}
	if req.MaxTokens != nil {
		p["max_tokens"] = *req.MaxTokens
	}
	if req.TopP != nil {
		p["top_p"] = *req.TopP
	}
	if req.N != nil {
		p["n"] = *req.N
	}
	if len(req.Stop) > 0 {
		p["stop"] = req.Stop
	}
	if req.Seed != nil {
		p["seed"] = *req.Seed
	}
	if req.ResponseFormat != nil {
		p["response_format"] = req.ResponseFormat.Type
	}
	if req.RolloutID != "" {
		p["rollout_id"] = req.RolloutID
	}
	return p
}

func publishParseFailure(ctx context.Context, kind event.Kind, err error, fallback string) {
	if !event.Enabled(ctx, kind) {
		return
	}
	info := &event.ParseFailureInfo{Fallback: fallback, Error: err.Error()}
	var pe *ParseError
	if errors.As(err, &pe) {
		info.Adapter, info.Field, info.Raw = pe.Adapter, pe.Field, pe.Raw
	}
	event.Publish(ctx, kind, event.SpanFrom(ctx), info)
}
