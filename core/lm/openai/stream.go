package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"

	"github.com/dspex/dspex/core/lm"
)

// maxStreamEvent bounds one server-sent event: each line, and the data lines
// of one event together.
const maxStreamEvent = 1 << 20

var _ lm.Streamer = (*Client)(nil)

// Stream sends req as a streaming chat completion ("stream": true, with
// "stream_options": {"include_usage": true}) and yields the answer as the
// server sends it: a Delta for each piece of a choice's text (Index is the
// choice's index, so n > 1 choices may interleave), FinishReason on the
// delta that ends a choice, and Usage on the usage chunk, the final delta.
// The request body is the one Complete sends, plus those two fields;
// Params.Extra may replace stream_options but never turns streaming off.
//
// Each iteration sends a new request. A failure is yielded once, as the
// error of the last pair, and is an *Error: before the stream starts, the
// same as Complete's; during it, ErrConnection for a broken connection or a
// stream that ends without "data: [DONE]" and without every choice
// finished ("stream ended early"), ErrBadResponse for an event that is not
// a completion chunk or longer than 1 MiB, ErrServer for an error event
// ({"error": ...}), ErrCanceled when ctx is cancelled and ErrTimeout when
// its deadline or Config.Timeout (which bounds the whole stream)
// passes. Stopping the iteration early cancels the request and closes the
// connection; Stream starts no goroutine of its own.
//
// A server that ignores "stream" and answers with a JSON completion is
// accepted: its choices are yielded as one delta each, usage on the last.
// Stream is safe for concurrent use.
func (o *Client) Stream(ctx context.Context, req *lm.Request) iter.Seq2[lm.Delta, error] {
	return func(yield func(lm.Delta, error) bool) {
		model, serr := o.Start(ctx, req)
		if serr != nil {
			yield(lm.Delta{}, serr)
			return
		}
		body, err := o.body(model, req, true)
		if err != nil {
			yield(lm.Delta{}, err)
			return
		}

		// callCtx also ends the request when the consumer stops early.
		callCtx, cancel := o.CallContext(ctx)
		defer cancel()
		httpReq, err := http.NewRequestWithContext(callCtx, http.MethodPost, o.chatURL, bytes.NewReader(body))
		if err != nil {
			yield(lm.Delta{}, &lm.Error{Kind: lm.ErrBadRequest, Model: model, URL: o.URL(), Message: "build request: " + err.Error(), Err: err})
			return
		}
		httpReq.Header = o.headers.Clone()
		httpReq.Header.Set("Accept", "text/event-stream")
		httpRes, err := o.client.Do(httpReq)
		if err != nil {
			yield(lm.Delta{}, o.callError(ctx, callCtx, model, nil, err))
			return
		}
		defer httpRes.Body.Close()
		if httpRes.StatusCode >= 400 {
			yield(lm.Delta{}, o.statusError(model, httpRes))
			return
		}
		s := &chatStream{
			o: o, model: model, status: httpRes.StatusCode, ctx: callCtx,
			fail: func(err error) *lm.Error { return o.callError(ctx, callCtx, model, httpRes, err) },
		}
		if mt, _, _ := mime.ParseMediaType(httpRes.Header.Get("Content-Type")); mt == "application/json" {
			s.whole(httpRes, yield)
			return
		}
		s.run(httpRes.Body, yield)
	}
}

// chatStream decodes one streamed chat completion.
type chatStream struct {
	o      *Client
	model  string
	status int
	// ctx is checked before each event, so that a cancelled stream stops
	// even while events are still buffered; nil in fuzz tests.
	ctx context.Context
	// fail classifies an error reading the body.
	fail func(error) *lm.Error

	finished  map[int]bool // choices seen; true once given a finish reason
	usage     *lm.Usage    // the latest usage, if any
	usageSent bool         // usage was yielded after its last change
	done      bool         // "data: [DONE]" arrived
}

// chatChunk is the part of a chat.completion.chunk that DSPEx reads.
type chatChunk struct {
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *lm.Usage       `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// errStreamEventTooLong reports an event over maxStreamEvent bytes.
var errStreamEventTooLong = fmt.Errorf("openai: stream event longer than %d bytes", maxStreamEvent)

// run reads server-sent events from body until [DONE], the end of the
// body, an error, or the consumer stops.
func (s *chatStream) run(body io.Reader, yield func(lm.Delta, error) bool) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4096), maxStreamEvent)
	var (
		event string // the event's name, "" for a plain message
		data  []byte // the event's data lines, joined by '\n'
		lines int    // data lines in data
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if lines == 0 && event == "" {
				continue
			}
			if !s.dispatch(event, data, yield) {
				return
			}
			event, data, lines = "", data[:0], 0
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "": // a comment, such as a keep-alive
		case "event":
			event = string(value)
		case "data", "error":
			// llama.cpp writes "error: {...}" for an error event.
			if string(name) == "error" {
				event = "error"
			}
			if lines > 0 {
				data = append(data, '\n')
			}
			if len(data)+len(value) > maxStreamEvent {
				s.yieldErr(yield, &lm.Error{Kind: lm.ErrBadResponse, Model: s.model, URL: s.o.URL(), StatusCode: s.status,
					Message: errStreamEventTooLong.Error(), Err: errStreamEventTooLong})
				return
			}
			data = append(data, value...)
			lines++
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			s.yieldErr(yield, &lm.Error{Kind: lm.ErrBadResponse, Model: s.model, URL: s.o.URL(), StatusCode: s.status,
				Message: errStreamEventTooLong.Error(), Err: errStreamEventTooLong})
			return
		}
		s.yieldErr(yield, s.fail(err))
		return
	}
	// The body ended. An event without its closing blank line still counts.
	if lines > 0 && !s.dispatch(event, data, yield) {
		return
	}
	s.end(yield)
}

// dispatch handles one event and reports whether to read on.
func (s *chatStream) dispatch(event string, data []byte, yield func(lm.Delta, error) bool) bool {
	if s.done {
		return false
	}
	if s.ctx != nil && s.ctx.Err() != nil {
		s.yieldErr(yield, s.fail(context.Cause(s.ctx)))
		return false
	}
	data = bytes.TrimSpace(data)
	if string(data) == "[DONE]" {
		s.done = true
		s.end(yield)
		return false
	}
	if event == "error" {
		s.yieldErr(yield, s.eventError(data))
		return false
	}
	if len(data) == 0 {
		return true
	}
	var c chatChunk
	if err := json.Unmarshal(data, &c); err != nil {
		s.yieldErr(yield, &lm.Error{Kind: lm.ErrBadResponse, Model: s.model, URL: s.o.URL(), StatusCode: s.status,
			Message: "decode stream event: " + err.Error() + ": " + s.o.clip(data), Err: err})
		return false
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		s.yieldErr(yield, s.eventError(c.Error))
		return false
	}
	if s.finished == nil {
		s.finished = map[int]bool{}
	}
	for _, ch := range c.Choices {
		if ch.Index < 0 || ch.Index >= lm.MaxStreamChoices {
			s.yieldErr(yield, &lm.Error{Kind: lm.ErrBadResponse, Model: s.model, URL: s.o.URL(), StatusCode: s.status,
				Message: fmt.Sprintf("stream choice index %d out of range [0, %d)", ch.Index, lm.MaxStreamChoices)})
			return false
		}
		d := lm.Delta{Index: ch.Index}
		if ch.Delta.Content != nil {
			d.Text = *ch.Delta.Content
		}
		if ch.FinishReason != nil {
			d.FinishReason = *ch.FinishReason
		}
		s.finished[ch.Index] = s.finished[ch.Index] || d.FinishReason != ""
		if d.Text == "" && d.FinishReason == "" {
			continue // the role chunk, or a refusal or tool-call piece
		}
		if !yield(d, nil) {
			return false
		}
	}
	if c.Usage != nil {
		u := *c.Usage
		s.usage, s.usageSent = &u, false
		// OpenAI sends usage alone in the last chunk; servers that report
		// usage on every chunk have theirs yielded once, at the end.
		if len(c.Choices) == 0 {
			s.usageSent = true
			if !yield(lm.Delta{Usage: &u}, nil) {
				return false
			}
		}
	}
	return true
}

// end finishes a stream whose body ended or said [DONE].
func (s *chatStream) end(yield func(lm.Delta, error) bool) {
	if !s.done && !s.allFinished() {
		s.yieldErr(yield, &lm.Error{Kind: lm.ErrConnection, Model: s.model, URL: s.o.URL(), StatusCode: s.status,
			Message: "stream ended early", Err: io.ErrUnexpectedEOF})
		return
	}
	if s.usage != nil && !s.usageSent {
		s.usageSent = true
		u := *s.usage
		yield(lm.Delta{Usage: &u}, nil)
	}
}

// allFinished reports whether at least one choice arrived and every one
// that did got a finish reason.
func (s *chatStream) allFinished() bool {
	for _, f := range s.finished {
		if !f {
			return false
		}
	}
	return len(s.finished) > 0
}

// eventError is the error for an error event whose data is raw.
func (s *chatStream) eventError(raw []byte) *lm.Error {
	msg := "error event in stream"
	var wrapped struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && len(wrapped.Error) > 0 && string(wrapped.Error) != "null" {
		raw = wrapped.Error
	}
	if text, ok := lm.ErrorText(raw); ok {
		msg += ": " + s.o.Scrub(text)
	}
	return &lm.Error{Kind: lm.ErrServer, Model: s.model, URL: s.o.URL(), StatusCode: s.status, Message: msg}
}

// yieldErr yields err as the last pair, once.
func (s *chatStream) yieldErr(yield func(lm.Delta, error) bool, err *lm.Error) {
	s.done = true
	yield(lm.Delta{}, err)
}

// whole yields a completion that came back in one JSON body.
func (s *chatStream) whole(httpRes *http.Response, yield func(lm.Delta, error) bool) {
	raw, tooLarge, err := readBody(httpRes, s.o.maxBody, new(bytes.Buffer))
	if tooLarge {
		yield(lm.Delta{}, s.o.tooLarge(s.model, s.status))
		return
	}
	if err != nil {
		yield(lm.Delta{}, s.fail(err))
		return
	}
	res, err := s.o.parse(s.model, raw, httpRes)
	if err != nil {
		yield(lm.Delta{}, err)
		return
	}
	yieldResponse(res, yield)
}

// yieldResponse yields a whole response as a stream: one delta per choice,
// with the usage on the last (as lm.StreamOrComplete does).
func yieldResponse(res *lm.Response, yield func(lm.Delta, error) bool) {
	for i, c := range res.Choices {
		d := lm.Delta{Index: i, Text: c.Text, FinishReason: c.FinishReason}
		if i == len(res.Choices)-1 {
			u := res.Usage
			d.Usage = &u
		}
		if !yield(d, nil) {
			return
		}
	}
}
