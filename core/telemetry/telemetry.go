// Package telemetry exports DSPEx's events as OpenTelemetry traces. It is a
// subscriber of the event bus (package event): runs, module calls and LM
// calls become spans — LM calls following the OpenTelemetry GenAI semantic
// conventions — and retries, waits, breaker changes and parse failures
// become span events on the span they happened in.
//
// Export is off unless configured: FromEnv builds an OTLP/HTTP exporter
// only when the standard OTEL_* environment variables ask for one.
// NewExporter takes any sdktrace.SpanExporter (tests use the in-memory one
// from go.opentelemetry.io/otel/sdk/trace/tracetest).
//
// Every span of a run is in one OTel trace whose TraceID is derived from
// the run id, and each span's SpanID is the event span id, so parent links
// hold even when a parent's start event was never seen.
package telemetry

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/dspex/dspex/core/event"
)

// Defaults for Options.
const (
	DefaultServiceName       = "dspex"
	DefaultMaxOpenSpans      = 100_000
	DefaultMaxAttributeBytes = 4 << 10
	// DefaultBuffer is the subscription's buffer. The subscription blocks
	// (nothing is lost) but the handler only hands spans to the batch
	// processor, so it rarely fills.
	DefaultBuffer = 4096
)

// instrumentationName names the tracer that makes DSPEx's spans.
const instrumentationName = "github.com/dspex/dspex/core/telemetry"

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("telemetry: exporter closed")

// Options configure an Exporter. The zero value needs only SpanExporter.
type Options struct {
	// SpanExporter receives the finished spans, through a batch span
	// processor. Required.
	SpanExporter sdktrace.SpanExporter
	// ServiceName is the resource's service.name. Default "dspex";
	// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES),
	// when set, takes precedence.
	ServiceName string
	// MaxOpenSpans bounds the spans started but not yet ended. When it is
	// reached the oldest open span is ended early and marked
	// dspex.incomplete. Default 100,000.
	MaxOpenSpans int
	// MaxAttributeBytes bounds string attributes holding JSON (module
	// inputs and outputs) or free text (errors, raw LM answers). Default
	// 4 KiB.
	MaxAttributeBytes int
}

// Exporter turns bus events into OpenTelemetry spans. Safe for concurrent
// use; Attach it to one or more buses, and Close it when done to end what
// is still open and flush.
type Exporter struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	maxOpen  int
	maxAttr  int

	mu     sync.Mutex
	open   map[spanKey]*list.Element // values *openSpan
	order  *list.List                // open spans, oldest first
	subs   []*event.Subscription
	closed bool
}

// NewExporter returns an exporter sending spans to opts.SpanExporter. The
// context bounds the resource detection (it reads the environment).
func NewExporter(ctx context.Context, opts Options) (*Exporter, error) {
	if opts.SpanExporter == nil {
		return nil, errors.New("telemetry: no span exporter given")
	}
	if opts.ServiceName == "" {
		opts.ServiceName = DefaultServiceName
	}
	if opts.MaxOpenSpans <= 0 {
		opts.MaxOpenSpans = DefaultMaxOpenSpans
	}
	if opts.MaxAttributeBytes <= 0 {
		opts.MaxAttributeBytes = DefaultMaxAttributeBytes
	}
	// Later detectors win: the environment overrides the default name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", opts.ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: build resource: %w", err)
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(opts.SpanExporter),
		sdktrace.WithResource(res),
		sdktrace.WithIDGenerator(idGenerator{}),
		// Sampling is the collector's business: every event becomes a span.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	)
	return &Exporter{
		provider: provider,
		tracer:   provider.Tracer(instrumentationName),
		maxOpen:  opts.MaxOpenSpans,
		maxAttr:  opts.MaxAttributeBytes,
		open:     make(map[spanKey]*list.Element),
		order:    list.New(),
	}, nil
}

// FromEnv returns an exporter configured by the standard OpenTelemetry
// environment variables, and whether export is on. It is off (nil, false,
// nil) unless asked for:
//
//   - OTEL_SDK_DISABLED=true turns it off whatever else is set;
//   - OTEL_TRACES_EXPORTER=none turns it off, =otlp turns it on (other
//     exporter names are an error);
//   - otherwise it is on when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
//
// When on, spans go over OTLP/HTTP (go.opentelemetry.io/otel/exporters/
// otlp/otlptrace/otlptracehttp), which itself reads the endpoint
// (default https://localhost:4318, "/v1/traces" appended), and
// OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, _TIMEOUT, _COMPRESSION, _PROTOCOL
// (http/protobuf or http/json; grpc is refused), _INSECURE, _CERTIFICATE,
// _CLIENT_CERTIFICATE and _CLIENT_KEY. The batch span processor reads
// OTEL_BSP_*; the resource reads OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES.
func FromEnv(ctx context.Context) (*Exporter, bool, error) {
	on, err := enabledByEnv(os.Getenv)
	if err != nil || !on {
		return nil, false, err
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		p := strings.TrimSpace(os.Getenv(v))
		if p == "" {
			continue
		}
		if p != "http/protobuf" && p != "http/json" {
			return nil, false, fmt.Errorf("telemetry: %s=%q is not supported; use http/protobuf or http/json", v, p)
		}
		break
	}
	se, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("telemetry: create otlp http exporter: %w", err)
	}
	e, err := NewExporter(ctx, Options{SpanExporter: se})
	if err != nil {
		_ = se.Shutdown(ctx)
		return nil, false, err
	}
	return e, true, nil
}

// enabledByEnv decides whether the environment asks for trace export.
func enabledByEnv(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	if v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v != "" {
		on := false
		for name := range strings.SplitSeq(v, ",") {
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "otlp":
				on = true
			case "none", "":
			default:
				return false, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q: exporter %q is not supported (use otlp or none)", v, name)
			}
		}
		return on, nil
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
}

// kinds returns the event kinds the exporter turns into spans or span
// events.
func kinds() []event.Kind {
	return []event.Kind{
		event.RunStart, event.RunEnd,
		event.ModuleStart, event.ModuleEnd,
		event.LMStart, event.LMEnd,
		event.LMRetry, event.LMQueueWait, event.LMRateLimitWait,
		event.BreakerState, event.ParseFailure, event.AdapterFallback,
	}
}

// Attach subscribes the exporter to bus with the Block policy, so no span
// is lost unless the exporter stalls for the bus's block timeout.
func (e *Exporter) Attach(bus *event.Bus) error {
	if bus == nil {
		return errors.New("telemetry: attach to nil bus")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	sub, err := bus.Subscribe(event.SubscribeOptions{
		Name: "telemetry", Kinds: kinds(), Buffer: DefaultBuffer, Policy: event.Block,
	}, e.handle)
	if err != nil {
		return fmt.Errorf("telemetry: subscribe: %w", err)
	}
	e.subs = append(e.subs, sub)
	return nil
}

// Flush exports the spans ended so far without closing the exporter.
func (e *Exporter) Flush(ctx context.Context) error {
	if err := e.provider.ForceFlush(ctx); err != nil {
		return fmt.Errorf("telemetry: flush: %w", err)
	}
	return nil
}

// Close unsubscribes (handling what is buffered), ends the spans still
// open (marked dspex.incomplete), flushes and shuts the span exporter
// down. The context bounds the flush. Later calls return nil.
func (e *Exporter) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	subs := e.subs
	e.subs = nil
	e.mu.Unlock()
	// The handler takes e.mu, so subscriptions close without it held.
	for _, s := range subs {
		s.Close()
	}
	e.mu.Lock()
	now := time.Now()
	for e.order.Len() > 0 {
		e.endIncomplete(e.order.Front(), now)
	}
	e.mu.Unlock()
	if err := e.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shut down tracer provider: %w", err)
	}
	return nil
}
