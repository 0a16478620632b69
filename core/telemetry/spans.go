package telemetry

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dspex/dspex/core/event"
)

// Attribute keys. The gen_ai.* and error.type keys are the OpenTelemetry
// semantic conventions' (GenAI, v1.37+); gen_ai.system is the older name of
// gen_ai.provider.name, set too for backends that still read it.
const (
	attrGenAIOperation   = "gen_ai.operation.name"
	attrGenAISystem      = "gen_ai.system"
	attrGenAIProvider    = "gen_ai.provider.name"
	attrGenAIReqModel    = "gen_ai.request.model"
	attrGenAIRespModel   = "gen_ai.response.model"
	attrGenAITemperature = "gen_ai.request.temperature"
	attrGenAIMaxTokens   = "gen_ai.request.max_tokens"
	attrGenAITopP        = "gen_ai.request.top_p"
	attrGenAIChoices     = "gen_ai.request.choice.count"
	attrGenAISeed        = "gen_ai.request.seed"
	attrGenAIInTokens    = "gen_ai.usage.input_tokens"
	attrGenAIOutTokens   = "gen_ai.usage.output_tokens"
	attrErrorType        = "error.type"
	// errorTypeOther is the conventions' error.type when nothing more
	// precise is known.
	errorTypeOther = "_OTHER"
)

// maxNameSignature bounds the signature part of a module span's name;
// span names should stay short and low in cardinality.
const maxNameSignature = 120

// openSpan is a span started and not yet ended.
type openSpan struct {
	key  spanKey
	span trace.Span
}

// handle is the subscription's handler.
func (e *Exporter) handle(ev event.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ev.Kind {
	case event.RunStart, event.ModuleStart, event.LMStart:
		e.startEvent(ev)
	case event.RunEnd, event.ModuleEnd, event.LMEnd:
		e.endEvent(ev)
	default:
		e.spanEvent(ev)
	}
}

// startEvent opens the span an event starts. Called with e.mu held.
func (e *Exporter) startEvent(ev event.Event) {
	key := spanKey{ev.RunID, ev.SpanID}
	if _, ok := e.open[key]; ok {
		return // a repeated start adds nothing
	}
	name, kind, attrs, ok := e.describe(ev)
	if !ok {
		return
	}
	e.startSpan(ev, ev.Time, name, kind, attrs)
}

// endEvent ends the span an event ends, starting it first (backdated by
// the payload's duration) when its start was not seen. Called with e.mu
// held.
func (e *Exporter) endEvent(ev event.Event) {
	key := spanKey{ev.RunID, ev.SpanID}
	var sp *openSpan
	if el, ok := e.open[key]; ok {
		sp = e.remove(el)
	} else {
		name, kind, attrs, ok := e.describe(ev)
		if !ok {
			return
		}
		sp = e.remove(e.startSpan(ev, ev.Time.Add(-elapsed(ev.Data)), name, kind, attrs))
	}
	e.finish(sp.span, ev.Data)
	sp.span.End(trace.WithTimestamp(ev.Time))
}

// elapsed is how long before its end event a span started, as far as the
// payload tells.
func elapsed(data any) time.Duration {
	switch d := data.(type) {
	case *event.ModuleCall:
		return d.Duration
	case *event.LMCall:
		return d.QueueWait + d.Latency
	}
	return 0
}

// spanEvent records a retry, wait, breaker change or parse failure on the
// span it happened in — the event's own span, else its parent — when that
// span is open. Called with e.mu held.
func (e *Exporter) spanEvent(ev event.Event) {
	el, ok := e.open[spanKey{ev.RunID, ev.SpanID}]
	if !ok && ev.ParentID != "" {
		el, ok = e.open[spanKey{ev.RunID, ev.ParentID}]
	}
	if !ok {
		return
	}
	var attrs []attribute.KeyValue
	switch d := ev.Data.(type) {
	case *event.LMRetryInfo:
		attrs = []attribute.KeyValue{
			attribute.String(attrGenAIReqModel, d.Model),
			attribute.Int("dspex.attempt", d.Attempt),
			attribute.String("dspex.error", e.truncate(d.Error)),
			attribute.Int64("dspex.wait_ms", d.Wait.Milliseconds()),
		}
	case *event.LMWait:
		attrs = []attribute.KeyValue{
			attribute.String(attrGenAIReqModel, d.Model),
			attribute.Int64("dspex.wait_ms", d.Wait.Milliseconds()),
		}
	case *event.BreakerChange:
		attrs = []attribute.KeyValue{
			attribute.String("dspex.breaker.name", d.Name),
			attribute.String("dspex.breaker.from", d.From),
			attribute.String("dspex.breaker.to", d.To),
		}
	case *event.ParseFailureInfo:
		attrs = []attribute.KeyValue{
			attribute.String("dspex.adapter", d.Adapter),
			attribute.String("dspex.error", e.truncate(d.Error)),
			attribute.String("dspex.raw", e.truncate(d.Raw)),
		}
		if d.Field != "" {
			attrs = append(attrs, attribute.String("dspex.field", d.Field))
		}
		if d.Fallback != "" {
			attrs = append(attrs, attribute.String("dspex.fallback", d.Fallback))
		}
	}
	el.Value.(*openSpan).span.AddEvent(string(ev.Kind), trace.WithTimestamp(ev.Time), trace.WithAttributes(attrs...))
}

// startSpan starts a span for ev at start, as a child of ev.ParentID, and
// records it as open. Called with e.mu held.
func (e *Exporter) startSpan(ev event.Event, start time.Time, name string, kind trace.SpanKind, attrs []attribute.KeyValue) *list.Element {
	for len(e.open) >= e.maxOpen && e.order.Len() > 0 {
		e.endIncomplete(e.order.Front(), ev.Time)
	}
	tid := traceIDFor(ev.RunID, ev.SpanID)
	ctx := context.WithValue(context.Background(), wantIDsKey{}, wantIDs{trace: tid, span: spanIDFor(ev.SpanID)})
	if ev.ParentID != "" {
		if el, ok := e.open[spanKey{ev.RunID, ev.ParentID}]; ok {
			ctx = trace.ContextWithSpan(ctx, el.Value.(*openSpan).span)
		} else {
			// The parent's start was missed, or it has ended already: the
			// derived ids still place this span under it.
			ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tid, SpanID: spanIDFor(ev.ParentID), TraceFlags: trace.FlagsSampled, Remote: true,
			}))
		}
	}
	if ev.RunID != "" {
		attrs = append(attrs, attribute.String("dspex.run_id", ev.RunID))
	}
	_, span := e.tracer.Start(ctx, name, trace.WithTimestamp(start), trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	key := spanKey{ev.RunID, ev.SpanID}
	el := e.order.PushBack(&openSpan{key: key, span: span})
	e.open[key] = el
	return el
}

// remove forgets an open span and returns it. Called with e.mu held.
func (e *Exporter) remove(el *list.Element) *openSpan {
	sp := e.order.Remove(el).(*openSpan)
	delete(e.open, sp.key)
	return sp
}

// endIncomplete ends an open span whose end event never came (the open
// span bound was reached, or the exporter is closing). Called with e.mu
// held.
func (e *Exporter) endIncomplete(el *list.Element, at time.Time) {
	sp := e.remove(el)
	sp.span.SetAttributes(attribute.Bool("dspex.incomplete", true))
	sp.span.End(trace.WithTimestamp(at))
}

// describe returns the name, kind and start attributes of the span a start
// or end event belongs to; ok is false for a payload of the wrong type.
func (e *Exporter) describe(ev event.Event) (name string, kind trace.SpanKind, attrs []attribute.KeyValue, ok bool) {
	switch d := ev.Data.(type) {
	case *event.RunInfo:
		name = "dspex.run"
		if d.Name != "" {
			name += " " + d.Name
		}
		attrs = []attribute.KeyValue{attribute.String("dspex.run.name", d.Name)}
		if d.Program != "" {
			attrs = append(attrs, attribute.String("dspex.program", d.Program))
		}
		if len(d.Meta) > 0 {
			attrs = append(attrs, attribute.String("dspex.run.meta", e.jsonAttr(d.Meta)))
		}
		return name, trace.SpanKindInternal, attrs, true
	case *event.ModuleCall:
		name = d.Module
		if name == "" {
			name = "module"
		}
		if d.Signature != "" {
			name += " " + truncateBytes(d.Signature, maxNameSignature)
		}
		attrs = []attribute.KeyValue{attribute.String("dspex.module", d.Module)}
		if d.Signature != "" {
			attrs = append(attrs, attribute.String("dspex.signature", d.Signature))
		}
		if d.Inputs != nil {
			attrs = append(attrs, attribute.String("dspex.inputs", e.jsonAttr(d.Inputs)))
		}
		return name, trace.SpanKindInternal, attrs, true
	case *event.LMCall:
		provider := providerOf(d.Model, d.Params)
		attrs = []attribute.KeyValue{
			attribute.String(attrGenAIOperation, "chat"),
			attribute.String(attrGenAIProvider, provider),
			attribute.String(attrGenAISystem, provider),
			attribute.String(attrGenAIReqModel, d.Model),
		}
		if d.Adapter != "" {
			attrs = append(attrs, attribute.String("dspex.adapter", d.Adapter))
		}
		if v, ok := number(d.Params["temperature"]); ok {
			attrs = append(attrs, attribute.Float64(attrGenAITemperature, v))
		}
		if v, ok := integer(d.Params["max_tokens"]); ok {
			attrs = append(attrs, attribute.Int64(attrGenAIMaxTokens, v))
		}
		if v, ok := number(d.Params["top_p"]); ok {
			attrs = append(attrs, attribute.Float64(attrGenAITopP, v))
		}
		if v, ok := integer(d.Params["n"]); ok && v != 1 {
			attrs = append(attrs, attribute.Int64(attrGenAIChoices, v))
		}
		if v, ok := integer(d.Params["seed"]); ok {
			attrs = append(attrs, attribute.Int64(attrGenAISeed, v))
		}
		return "chat " + d.Model, trace.SpanKindClient, attrs, true
	}
	return "", trace.SpanKindInternal, nil, false
}

// finish sets the attributes and status an end event's payload gives.
func (e *Exporter) finish(span trace.Span, data any) {
	switch d := data.(type) {
	case *event.RunInfo:
		span.SetAttributes(
			attribute.Int("dspex.calls", d.Calls),
			attribute.Int("dspex.cache_hits", d.CacheHits),
			attribute.Int("dspex.usage.prompt_tokens", d.PromptTokens),
			attribute.Int("dspex.usage.completion_tokens", d.CompletionTokens),
			attribute.Float64("dspex.cost_usd", d.CostUSD),
		)
		if d.CostUnknownCalls > 0 {
			span.SetAttributes(attribute.Int("dspex.cost_unknown_calls", d.CostUnknownCalls))
		}
		e.fail(span, d.Error, "")
	case *event.ModuleCall:
		if d.Outputs != nil {
			span.SetAttributes(attribute.String("dspex.outputs", e.jsonAttr(d.Outputs)))
		}
		e.fail(span, d.Error, "")
	case *event.LMCall:
		span.SetAttributes(
			attribute.Int(attrGenAIInTokens, d.PromptTokens),
			attribute.Int(attrGenAIOutTokens, d.CompletionTokens),
			attribute.Bool("dspex.cache_hit", d.CacheHit),
			attribute.Int("dspex.attempts", d.Attempts),
		)
		if d.Error == "" {
			span.SetAttributes(attribute.String(attrGenAIRespModel, d.Model))
		}
		if d.CostKnown {
			span.SetAttributes(attribute.Float64("dspex.cost_usd", d.CostUSD))
		}
		if d.QueueWait > 0 {
			span.SetAttributes(attribute.Int64("dspex.queue_wait_ms", d.QueueWait.Milliseconds()))
		}
		e.fail(span, d.Error, d.ErrorKind)
	}
}

// fail marks span failed when msg is set.
func (e *Exporter) fail(span trace.Span, msg, kind string) {
	if msg == "" {
		return
	}
	if kind == "" {
		kind = errorTypeOther
	}
	span.SetAttributes(attribute.String(attrErrorType, kind))
	span.SetStatus(codes.Error, e.truncate(msg))
}

// jsonAttr renders v as JSON for a string attribute, bounded.
func (e *Exporter) jsonAttr(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return e.truncate(fmt.Sprintf("%v", v))
	}
	return e.truncate(string(b))
}

func (e *Exporter) truncate(s string) string { return truncateBytes(s, e.maxAttr) }

// truncateBytes cuts s to at most n bytes on a rune boundary, marking the
// cut with "…".
func truncateBytes(s string, n int) string {
	const mark = "…"
	if len(s) <= n {
		return s
	}
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// number reads a numeric parameter, whichever way it was stored.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case *float64:
		if n != nil {
			return *n, true
		}
	case *int:
		if n != nil {
			return float64(*n), true
		}
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

// integer reads an integer parameter exactly (seeds do not survive a trip
// through float64), accepting whole floats too.
func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case *int:
		if n != nil {
			return int64(*n), true
		}
	case *int64:
		if n != nil {
			return *n, true
		}
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	if f, ok := number(v); ok && f == float64(int64(f)) {
		return int64(f), true
	}
	return 0, false
}

// providerOf names the GenAI provider (gen_ai.provider.name) of a model:
// from an explicit "provider" parameter, a "provider/model" prefix, or the
// model family's name; "openai" otherwise, since DSPEx speaks the OpenAI
// API to everything that is not Anthropic.
func providerOf(model string, params map[string]any) string {
	if p, ok := params["provider"].(string); ok && p != "" {
		if name := providerName(p); name != "" {
			return name
		}
		return strings.ToLower(p)
	}
	if prefix, _, ok := strings.Cut(model, "/"); ok {
		if p := providerName(prefix); p != "" {
			return p
		}
	}
	m := strings.ToLower(model)
	switch {
	case strings.HasPrefix(m, "claude"):
		return "anthropic"
	case strings.HasPrefix(m, "gemini"):
		return "gcp.gemini"
	case strings.HasPrefix(m, "mistral"), strings.HasPrefix(m, "mixtral"):
		return "mistral_ai"
	case strings.HasPrefix(m, "deepseek"):
		return "deepseek"
	case strings.HasPrefix(m, "grok"):
		return "x_ai"
	case strings.HasPrefix(m, "command"):
		return "cohere"
	}
	return "openai"
}

// providerName maps a provider prefix ("anthropic", "gemini") to its
// semantic-conventions name, "" when it is not a known provider (a
// Hugging Face organisation such as "meta-llama/...").
func providerName(p string) string {
	switch strings.ToLower(p) {
	case "openai":
		return "openai"
	case "anthropic":
		return "anthropic"
	case "azure", "azure_ai", "azure.ai.openai":
		return "azure.ai.openai"
	case "gemini", "google", "vertex_ai", "gcp.gemini":
		return "gcp.gemini"
	case "bedrock", "aws.bedrock":
		return "aws.bedrock"
	case "mistral", "mistral_ai":
		return "mistral_ai"
	case "groq":
		return "groq"
	case "deepseek":
		return "deepseek"
	case "xai", "x_ai":
		return "x_ai"
	case "cohere":
		return "cohere"
	case "perplexity":
		return "perplexity"
	case "ollama", "vllm", "sglang", "llamacpp", "lmstudio":
		// OpenAI-compatible servers.
		return "openai"
	}
	return ""
}
