package lmtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dspex/dspex/core/pyjson"
)

// simulatedCreated is the "created" time of every response: fixed, so that
// identical requests get byte-identical bodies (2024-01-01T00:00:00Z).
const simulatedCreated = 1704067200

// Bounds on request fields.
const (
	maxChoices  = 128
	maxMessages = 100_000
	maxStops    = 16
	chunkRunes  = 8 // streamed content pieces
)

// chatRequest is the part of an OpenAI chat completions body the
// simulator reads; other fields are accepted and ignored.
type chatRequest struct {
	Model               string         `json:"model"`
	Messages            []wireMessage  `json:"messages"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	N                   *int           `json:"n"`
	Stop                stopList       `json:"stop"`
	Seed                *int64         `json:"seed"`
	Temperature         *float64       `json:"temperature"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
	ResponseFormat      *wireFormat    `json:"response_format"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type wireMessage struct {
	Role    string      `json:"role"`
	Content wireContent `json:"content"`
}

// wireContent is a message's text: a string, null, or an array of content
// parts whose text parts are concatenated.
type wireContent string

func (c *wireContent) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		*c = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		// encoding/json has already checked b; decode it directly rather
		// than scanning it a second time (contents are most of a request).
		s, ok := unquoteJSON(b)
		if !ok {
			if err := json.Unmarshal(b, &s); err != nil {
				return err
			}
		}
		*c = wireContent(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New("content must be a string, null or an array of content parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			sb.WriteString(p.Text)
		}
	}
	*c = wireContent(sb.String())
	return nil
}

// stopList is "stop": a string or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or an array of strings")
	}
	*s = many
	return nil
}

// wireFormat is response_format: {"type": "json_schema", "json_schema":
// {"name": ..., "schema": {...}}}. A top-level "schema" is accepted too.
type wireFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
	Schema json.RawMessage `json:"schema"`
}

func (f *wireFormat) schema() json.RawMessage {
	if f == nil {
		return nil
	}
	if f.JSONSchema != nil && len(f.JSONSchema.Schema) > 0 {
		return f.JSONSchema.Schema
	}
	return f.Schema
}

// decodeBody reads a JSON request body into v. When it cannot, it answers
// 400 or 413 and returns that status; it returns 0 on success.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) int {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.reject(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit))
			return http.StatusRequestEntityTooLarge
		}
		s.reject(w, http.StatusBadRequest, "read request body: "+err.Error())
		return http.StatusBadRequest
	}
	// json.Unmarshal refuses data after the value too.
	if err := json.Unmarshal(body, v); err != nil {
		s.reject(w, http.StatusBadRequest, "request body is not valid JSON: "+err.Error())
		return http.StatusBadRequest
	}
	return 0
}

// unquoteJSON decodes a valid JSON string literal of valid UTF-8 whose
// escapes are the common ones (\" \\ \/ \n \r \t \b \f and \u escapes of
// the Basic Multilingual Plane outside surrogates); it reports false for
// anything else, which the caller leaves to encoding/json.
func unquoteJSON(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	b = b[1 : len(b)-1]
	if !utf8.Valid(b) {
		return "", false // encoding/json turns bad bytes into U+FFFD
	}
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b), true
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(b) {
			return "", false
		}
		switch b[i] {
		case '"', '\\', '/':
			out = append(out, b[i])
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'u':
			if i+4 >= len(b) {
				return "", false
			}
			n, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 32)
			if err != nil || (n >= 0xD800 && n < 0xE000) {
				return "", false
			}
			out = utf8.AppendRune(out, rune(n))
			i += 4
		default:
			return "", false
		}
	}
	return string(out), true
}

func (s *Server) reject(w http.ResponseWriter, status int, msg string) {
	s.count(func(st *Stats) { st.Rejected++ })
	writeError(w, status, "invalid_request_error", nil, msg)
}

func (req *chatRequest) validate() error {
	if req.Model == "" {
		return errors.New("model: required")
	}
	if len(req.Messages) == 0 {
		return errors.New("messages: must not be empty")
	}
	if len(req.Messages) > maxMessages {
		return fmt.Errorf("messages: more than %d", maxMessages)
	}
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			return fmt.Errorf("messages[%d].role: %q is not one of system, developer, user, assistant, tool, function", i, m.Role)
		}
	}
	if req.N != nil && (*req.N < 1 || *req.N > maxChoices) {
		return fmt.Errorf("n: %d is outside [1, %d]", *req.N, maxChoices)
	}
	if t := req.maxTokens(); t != nil && *t < 1 {
		return fmt.Errorf("max_tokens: %d is less than 1", *t)
	}
	if len(req.Stop) > maxStops {
		return fmt.Errorf("stop: more than %d sequences", maxStops)
	}
	if f := req.ResponseFormat; f != nil {
		switch f.Type {
		case "text", "json_object", "json_schema":
		default:
			return fmt.Errorf("response_format.type: %q is not one of text, json_object, json_schema", f.Type)
		}
	}
	return nil
}

func (req *chatRequest) maxTokens() *int {
	if req.MaxCompletionTokens != nil {
		return req.MaxCompletionTokens
	}
	return req.MaxTokens
}

func (req *chatRequest) formatType() string {
	if req.ResponseFormat == nil {
		return ""
	}
	return req.ResponseFormat.Type
}

// completion is one choice's answer.
type completion struct {
	Text   string
	Finish string
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	markModel(w)
	rec := RecordedRequest{Path: r.URL.Path, Rule: -1, Example: -1, Start: time.Now()}
	defer func() { s.record(rec) }()
	s.count(func(st *Stats) { st.Requests++ })
	if !s.enter(w) {
		rec.Status = http.StatusServiceUnavailable
		return
	}
	defer s.leave()

	var req chatRequest
	if status := s.decodeBody(w, r, &req); status != 0 {
		rec.Status = status
		return
	}
	msgs := make([]Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = Message{Role: m.Role, Content: string(m.Content)}
	}
	rec.Model, rec.Messages, rec.Stream, rec.Seed = req.Model, msgs, req.Stream, req.Seed
	rec.ResponseFormat = req.formatType()
	rec.ResponseSchema = string(req.ResponseFormat.schema())
	if err := req.validate(); err != nil {
		s.reject(w, http.StatusBadRequest, err.Error())
		rec.Status = http.StatusBadRequest
		return
	}
	n := 1
	if req.N != nil {
		n = *req.N
	}
	rec.N = n

	// The answer, and for a plain response its encoded body, are made
	// while the simulated latency runs (see injectFault).
	var (
		choices []completion
		src     answerSource
		u       usage
		id      string
		body    []byte
	)
	if _, ok := s.injectFault(w, r, &rec, true, req.Stream, func(spoil FaultKind) {
		choices, src = s.answer(&req, msgs, n, spoil)
		u = usageFor(msgs, choices)
		id = responseID(&req, msgs, n)
		if !req.Stream {
			resp := chatResponse{
				ID: id, Object: "chat.completion", Created: simulatedCreated, Model: req.Model,
				SystemFingerprint: Owner, Usage: u,
			}
			for i, c := range choices {
				resp.Choices = append(resp.Choices, chatChoice{
					Index: i, Message: chatMessage{Role: "assistant", Content: c.Text}, FinishReason: c.Finish,
				})
			}
			body = encodeJSON(resp)
		}
	}); !ok {
		return
	}
	rec.Rule, rec.Example, rec.Correct = src.rule, src.example, src.correct
	for _, c := range choices {
		rec.Completions = append(rec.Completions, c.Text)
	}
	s.count(func(st *Stats) {
		st.Completions++
		st.PromptTokens += int64(u.PromptTokens)
		st.CompletionTokens += int64(u.CompletionTokens)
		if src.rule >= 0 {
			st.ScriptHits++
		}
		if src.proposer {
			st.ProposerHits++
		}
		if src.example >= 0 {
			st.DatasetHits++
			st.DatasetAnswers += int64(len(src.correct))
			for _, ok := range src.correct {
				if ok {
					st.DatasetCorrect++
				}
			}
		}
	})
	rec.Status = http.StatusOK
	if req.Stream {
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		s.writeStream(w, r, id, req.Model, choices, u, includeUsage)
		return
	}
	writeBody(w, http.StatusOK, body)
}

// answerSource says where a request's answers came from.
type answerSource struct {
	rule    int    // script rule index, -1 for none
	example int    // dataset example index, -1 for none
	correct []bool // per choice, for dataset answers
	// proposer is set when the dataset's proposer behaviour answered.
	proposer bool
}

// answer builds the n completions for a request. spoil is FaultTruncated,
// FaultBadFields or "". A matching script rule answers first; else the
// dataset, when it knows the question, or its proposer behaviour, when
// the prompt asks for a proposer output; else placeholders.
func (s *Server) answer(req *chatRequest, msgs []Message, n int, spoil FaultKind) ([]completion, answerSource) {
	p, ok := parsePrompt(systemText(msgs))
	if !ok {
		p = nil
	}
	format := req.formatType()
	jsonMode := (p != nil && p.JSON) || format == "json_object" || format == "json_schema"
	var respSchema *ftype
	if raw := req.ResponseFormat.schema(); len(raw) > 0 {
		if v, err := pyjson.Decode(raw); err == nil {
			if o, ok := v.(pyjson.Object); ok {
				respSchema = fromSchema(o)
			}
		}
	}
	src := answerSource{rule: s.pickRule(msgs), example: -1}
	var rule *Rule
	if src.rule >= 0 {
		rule = &s.rules[src.rule] // rules are never modified after New
	}
	var assessed Assessment
	var dataKey uint64
	if rule == nil && s.cfg.Dataset != nil {
		if a, ok := s.cfg.Dataset.assess(p, msgs); ok {
			if correct, tuned := s.tunedExamples(req.Model); tuned {
				a = s.cfg.Dataset.withTuning(a, correct)
			}
			assessed, src.example = a, a.Example
			src.correct = make([]bool, n)
			dataKey = messagesKey(msgs) ^ mix64(uint64(s.cfg.Seed)^mix64(streamDataset))
		} else if isProposerPrompt(p) {
			src.proposer = true
			dataKey = messagesKey(msgs) ^ mix64(uint64(s.cfg.Seed)^mix64(streamProposer))
		}
	}
	snip := snippet(firstInput(p, lastUserMessage(msgs)))
	key := contentKey(req, msgs) ^ mix64(uint64(s.cfg.Seed))
	var reqSeed uint64
	if req.Seed != nil {
		reqSeed = uint64(*req.Seed)
	}
	var stops []string
	for _, st := range req.Stop {
		if st != "" {
			stops = append(stops, st)
		}
	}
	out := make([]completion, n)
	for i := range out {
		g := &generator{r: rand.New(rand.NewPCG(key, reqSeed+uint64(i))), snippet: snip}
		chosen := rule
		if src.example >= 0 {
			dc := s.cfg.Dataset.answer(assessed, p, rand.New(rand.NewPCG(dataKey, reqSeed+uint64(i))))
			src.correct[i] = dc.correct
			chosen = &Rule{Fields: dc.fields}
		} else if src.proposer {
			chosen = &Rule{Fields: s.cfg.Dataset.propose(p, msgs, mix64(dataKey^mix64(reqSeed+uint64(i))))}
		}
		c := completion{Text: buildText(p, jsonMode, chosen, g, respSchema, spoil == FaultBadFields), Finish: "stop"}
		c = limit(c, stops, req.maxTokens())
		if spoil == FaultTruncated {
			rs := []rune(c.Text)
			c = completion{Text: string(rs[:len(rs)/2]), Finish: "length"}
		}
		out[i] = c
	}
	return out, src
}

// buildText writes one completion.
func buildText(p *prompt, jsonMode bool, rule *Rule, g *generator, respSchema *ftype, badFields bool) string {
	if rule != nil && rule.Raw != "" {
		return rule.Raw
	}
	if p == nil {
		if rule != nil && len(rule.Fields) > 0 {
			names := slices.Sorted(func(yield func(string) bool) {
				for k := range rule.Fields {
					if !yield(k) {
						return
					}
				}
			})
			values := make([]any, len(names))
			for i, name := range names {
				values[i] = scriptedValue(strType(), rule.Fields[name], jsonMode)
			}
			if jsonMode {
				return jsonText(names, values)
			}
			return chatText(names, values)
		}
		if !jsonMode {
			return plainText(g.r)
		}
		if respSchema != nil {
			v := g.value(respSchema, "response", 0)
			if _, isObj := v.(pyjson.Object); isObj {
				return pyjson.Dumps(v, 2)
			}
			return jsonText([]string{"response"}, []any{v})
		}
		return jsonText([]string{"response"}, []any{plainText(g.r)})
	}
	names := make([]string, len(p.Outputs))
	values := make([]any, len(p.Outputs))
	for i, f := range p.Outputs {
		names[i] = f.Name
		if rule != nil {
			if v, ok := rule.Fields[f.Name]; ok {
				values[i] = scriptedValue(f.Type, v, jsonMode)
				continue
			}
		}
		values[i] = g.value(f.Type, f.Name, 0)
	}
	if badFields {
		names, values = spoilFields(p.Outputs, names, values)
	}
	if jsonMode {
		return jsonText(names, values)
	}
	return chatText(names, values)
}

// limit applies stop sequences and the max_tokens budget.
func limit(c completion, stops []string, maxTokens *int) completion {
	cut := -1
	for _, st := range stops {
		if i := strings.Index(c.Text, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		c.Text = c.Text[:cut]
	}
	if maxTokens != nil && tokens(utf8.RuneCountInString(c.Text)) > *maxTokens {
		rs := []rune(c.Text)
		c = completion{Text: string(rs[:*maxTokens*4]), Finish: "length"}
	}
	return c
}

// systemText is the concatenated system (or developer) messages, or the
// first message when there is none.
func systemText(msgs []Message) string {
	var parts []string
	for _, m := range msgs {
		if m.Role == "system" || m.Role == "developer" {
			parts = append(parts, m.Content)
		}
	}
	if len(parts) == 0 && len(msgs) > 0 {
		return msgs[0].Content
	}
	return strings.Join(parts, "\n")
}

// firstInput returns the value of the first input field in the last user
// message, or the whole message when it has no field sections.
func firstInput(p *prompt, user string) string {
	secs := userSections(user)
	for _, sec := range secs {
		if p == nil || len(p.Inputs) == 0 || slices.ContainsFunc(p.Inputs, func(f promptField) bool { return f.Name == sec.Name }) {
			return withoutOutputRequest(sec.Value)
		}
	}
	if len(secs) > 0 {
		return withoutOutputRequest(secs[0].Value)
	}
	return user
}

// withoutOutputRequest cuts the paragraph DSPy's adapters append to the
// last input ("Respond with ..."), so that a placeholder quotes the input.
func withoutOutputRequest(v string) string {
	for _, tail := range outputRequestTails {
		if i := strings.LastIndex(v, tail); i >= 0 {
			v = v[:i]
		}
	}
	return v
}

// contentKey hashes what determines an answer: the model, the messages and
// the response format.
func contentKey(req *chatRequest, msgs []Message) uint64 {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(req.Model)
	for _, m := range msgs {
		field(m.Role)
		field(m.Content)
	}
	field(req.formatType())
	field(string(req.ResponseFormat.schema()))
	return binary.LittleEndian.Uint64(h.Sum(nil))
}

// ResponseIDPrefix starts the id of every chat completion the simulator
// writes, so that a client can tell, from a response alone (a cached one
// too), that a simulator answered.
const ResponseIDPrefix = "chatcmpl-sim-"

// responseID is ResponseIDPrefix and a hash of the request, so identical
// requests get identical ids.
func responseID(req *chatRequest, msgs []Message, n int) string {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[:], contentKey(req, msgs))
	if req.Seed != nil {
		binary.LittleEndian.PutUint64(b[8:], uint64(*req.Seed))
	}
	binary.LittleEndian.PutUint64(b[16:], uint64(n))
	sum := sha256.Sum256(b[:])
	return ResponseIDPrefix + hex.EncodeToString(sum[:12])
}

// tokens estimates the tokens of a text of n characters: n/4 rounded up,
// at least 1.
func tokens(n int) int {
	return max(1, (n+3)/4)
}

// usageFor computes the usage of a response: prompt tokens from all
// message contents together, completion tokens summed over choices.
func usageFor(msgs []Message, choices []completion) usage {
	chars := 0
	for _, m := range msgs {
		chars += utf8.RuneCountInString(m.Content)
	}
	u := usage{PromptTokens: tokens(chars)}
	for _, c := range choices {
		u.CompletionTokens += tokens(utf8.RuneCountInString(c.Text))
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             usage        `json:"usage"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	Logprobs     *struct{}   `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
}

type chatMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

type chunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           []chunkChoice `json:"choices"`
	Usage             *usage        `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	Logprobs     *struct{}  `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// writeStream sends the choices as server-sent events in OpenAI's chunk
// format: per choice a role chunk, content in pieces of up to chunkRunes
// characters, and a chunk with the finish reason; then a usage chunk when
// asked for, and "data: [DONE]". It stops early if the client leaves.
func (s *Server) writeStream(w http.ResponseWriter, r *http.Request, id, model string, choices []completion, u usage, includeUsage bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(c chunk) bool {
		if r.Context().Err() != nil {
			return false
		}
		c.ID, c.Object, c.Created, c.Model, c.SystemFingerprint = id, "chat.completion.chunk", simulatedCreated, model, Owner
		var b bytes.Buffer
		b.WriteString("data: ")
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(c); err != nil {
			return false
		}
		b.WriteString("\n")
		if _, err := w.Write(b.Bytes()); err != nil {
			return false
		}
		_ = rc.Flush()
		return true
	}
	for i, c := range choices {
		empty := ""
		if !send(chunk{Choices: []chunkChoice{{Index: i, Delta: chunkDelta{Role: "assistant", Content: &empty}}}}) {
			return
		}
		for _, piece := range splitPieces(c.Text, chunkRunes) {
			if !send(chunk{Choices: []chunkChoice{{Index: i, Delta: chunkDelta{Content: &piece}}}}) {
				return
			}
		}
		finish := c.Finish
		if !send(chunk{Choices: []chunkChoice{{Index: i, FinishReason: &finish}}}) {
			return
		}
	}
	if includeUsage && !send(chunk{Choices: []chunkChoice{}, Usage: &u}) {
		return
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

// splitPieces splits s into pieces of at most n characters.
func splitPieces(s string, n int) []string {
	var out []string
	for s != "" {
		i, count := 0, 0
		for i < len(s) && count < n {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			count++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}

// writeMalformed answers 200 with a body that breaks off mid-JSON.
func writeMalformed(w http.ResponseWriter, stream bool) {
	const broken = `{"id": "chatcmpl-sim-malformed", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "This simulated response breaks off`
	if stream {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "data: "+broken+"\n\ndata: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, broken)
}

// apiError is OpenAI's error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    any     `json:"code"`
	} `json:"error"`
}

// writeError writes an OpenAI-style error. code is a string or nil.
func writeError(w http.ResponseWriter, status int, typ string, code any, msg string) {
	var e apiError
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, code
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, encodeJSON(v))
}

// encodeJSON encodes one of the simulator's own response types (which
// always encode) as a JSON line, without HTML escaping.
func encodeJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("lmtest: encode response: " + err.Error()) // a bug in the simulator's types
	}
	return b.Bytes()
}

// writeBody writes an encoded JSON body.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
