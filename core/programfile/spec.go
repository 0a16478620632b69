// Package programfile reads DSPEx program files (YAML: the LM endpoint, the
// adapter and the modules with their signatures) and builds runnable
// programs from them. The format is documented in docs/program-file.md.
package programfile

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/core/lm"
)

// Spec is a parsed program file.
type Spec struct {
	// LM configures the model endpoint the program calls.
	LM LMSpec `yaml:"lm"`
	// Models are further named endpoints (a teacher, a prompt model).
	Models []LMSpec `yaml:"models"`
	// Embeddings configures the embedding endpoint (retrieval, KNN).
	Embeddings *EmbeddingsSpec `yaml:"embeddings"`
	// Cache configures the response cache shared by every endpoint.
	Cache CacheSpec `yaml:"cache"`
	// Prices are US dollars per million tokens, by model name.
	Prices lm.Prices `yaml:"prices"`
	// Traces limits what the trace database keeps.
	Traces TracesSpec `yaml:"traces"`
	// Adapter is "chat" (the default, with JSON fallback) or "json".
	Adapter string `yaml:"adapter"`
	// Program describes the module.
	Program ModuleSpec `yaml:"program"`
	// Plugins is the plugin configuration (docs/plugins.md). The core does
	// not read it: commands that start plugins hand the file to the bridge,
	// which checks it. It is allowed here so that one file configures a
	// whole run.
	Plugins yaml.Node `yaml:"plugins"`

	file    string
	root    *yaml.Node
	modules map[string]ModuleBuilder
}

// LMSpec is the lm: section (and each entry of models:).
type LMSpec struct {
	// Name names an entry of models: (required there, unused in lm:).
	Name string `yaml:"name"`
	// Provider is "openai" (any OpenAI-compatible endpoint; the default) or
	// "anthropic" (the Anthropic Messages API).
	Provider string `yaml:"provider"`
	// Model is the model name sent to the endpoint (required).
	Model string `yaml:"model"`
	// BaseURL is the OpenAI-compatible base URL; default https://api.openai.com/v1.
	BaseURL string `yaml:"base_url"`
	// APIKeyEnv names the environment variable holding the API key; default
	// OPENAI_API_KEY. Keys never appear in program files.
	APIKeyEnv string `yaml:"api_key_env"`
	// Headers are extra HTTP headers sent with every request.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds each request (Go duration, e.g. "60s"); default 10m.
	Timeout string `yaml:"timeout"`
	// MaxResponseBytes bounds the body of one completion (provider openai);
	// a larger one fails the call. Default openai.DefaultMaxResponseBytes
	// (16 MiB).
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// ResponseFormat is the response_format the JSON adapter sends: auto
	// (the default: decided from the model name as DSPy decides, see
	// lm.AutoResponseFormat), json_schema, json_object or none.
	ResponseFormat string `yaml:"response_format"`
	// Execution layers (see docs/program-file.md for the defaults).
	Pool      lm.PoolConfig      `yaml:"pool"`
	RateLimit lm.RateLimitConfig `yaml:"rate_limit"`
	Retry     lm.RetryConfig     `yaml:"retry"`
	Breaker   lm.BreakerConfig   `yaml:"breaker"`
	// Sampling defaults for every call.
	Temperature *float64       `yaml:"temperature"`
	MaxTokens   *int           `yaml:"max_tokens"`
	TopP        *float64       `yaml:"top_p"`
	N           *int           `yaml:"n"`
	Stop        []string       `yaml:"stop"`
	Seed        *int64         `yaml:"seed"`
	Extra       map[string]any `yaml:"extra"`
}

// EmbeddingsSpec is the embeddings: section: an OpenAI-compatible
// embeddings endpoint with its own pool, retries and breaker.
type EmbeddingsSpec struct {
	Model      string            `yaml:"model"`
	BaseURL    string            `yaml:"base_url"`
	APIKeyEnv  string            `yaml:"api_key_env"`
	Headers    map[string]string `yaml:"headers"`
	Timeout    string            `yaml:"timeout"`
	Dimensions int               `yaml:"dimensions"`
	BatchSize  int               `yaml:"batch_size"`
	Pool       lm.PoolConfig     `yaml:"pool"`
	Retry      lm.RetryConfig    `yaml:"retry"`
	Breaker    lm.BreakerConfig  `yaml:"breaker"`
}

// CacheSpec is the cache: section.
type CacheSpec struct {
	// Disabled turns the response cache off.
	Disabled bool `yaml:"disabled"`
	// Path is the SQLite file shared by processes; default
	// $XDG_CACHE_HOME/dspex/lm-cache.db (see `dspex cache stats`).
	// "memory" keeps the cache in memory only.
	Path string `yaml:"path"`
	// MemoryEntries bounds the in-memory tier; default 10000.
	MemoryEntries int `yaml:"memory_entries"`
	// MaxDiskBytes bounds the file; default 1 GiB.
	MaxDiskBytes int64 `yaml:"max_disk_bytes"`
}

// TracesSpec is the traces: section: retention limits of the trace
// database, applied when a run opens it.
type TracesSpec struct {
	// MaxRuns keeps only the newest runs; 0 keeps all.
	MaxRuns int `yaml:"max_runs"`
	// MaxAge deletes runs older than this (e.g. "720h"); empty keeps all.
	MaxAge config.Duration `yaml:"max_age"`
}

// FileError is a problem in a program file: which file, which field (a
// dotted path such as "program.signature"), the line when known, and why.
type FileError struct {
	File   string
	Field  string
	Line   int
	Reason string
	Err    error
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// maxFileSize bounds program files; anything larger is surely not one.
const maxFileSize = 8 << 20

// File is the name the file was read from (LoadFile's path, Parse's name).
func (s *Spec) File() string { return s.file }

// LoadFile reads and validates a program file.
func LoadFile(path string, opts ...Option) (*Spec, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, &FileError{File: path, Reason: "cannot read program file", Err: err}
	}
	if info.Size() > maxFileSize {
		return nil, &FileError{File: path, Reason: fmt.Sprintf("file is %d bytes, more than the %d a program file may have", info.Size(), maxFileSize)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &FileError{File: path, Reason: "cannot read program file", Err: err}
	}
	return Parse(path, b, opts...)
}

var (
	yamlLineRE    = regexp.MustCompile(`line (\d+): (.*)`)
	yamlUnknownRE = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

// Parse reads a program file's contents; name is used in errors.
func Parse(name string, data []byte, opts ...Option) (*Spec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if len(root.Content) == 0 {
		return nil, &FileError{File: name, Reason: "file is empty; expected lm: and program: sections"}
	}
	spec := &Spec{file: name, root: &root}
	for _, o := range opts {
		o(spec)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(spec); err != nil {
		return nil, decodeError(name, &root, err)
	}
	spec.LM.expandEnv()
	for i := range spec.Models {
		spec.Models[i].expandEnv()
	}
	if e := spec.Embeddings; e != nil {
		e.Model, e.BaseURL = expandEnv(e.Model), expandEnv(e.BaseURL)
		expandHeaders(e.Headers)
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	return spec, nil
}

var envRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// expandEnv expands the endpoint's model, base URL, provider and header
// values (see the package function expandEnv).
func (l *LMSpec) expandEnv() {
	l.Model = expandEnv(l.Model)
	l.BaseURL = expandEnv(l.BaseURL)
	l.Provider = expandEnv(l.Provider)
	expandHeaders(l.Headers)
}

// expandEnv replaces ${VAR} and ${VAR:-default} in s (an unset or empty VAR
// gives the default, or ""), so one program file can point at different
// endpoints (the demo's simulated LM listens on a random port).
func expandEnv(s string) string {
	return envRefRE.ReplaceAllStringFunc(s, func(ref string) string {
		m := envRefRE.FindStringSubmatch(ref)
		if v, ok := os.LookupEnv(m[1]); ok && v != "" {
			return v
		}
		return m[2]
	})
}

// expandHeaders applies expandEnv to every header value, in place.
func expandHeaders(h map[string]string) {
	for k, v := range h {
		h[k] = expandEnv(v)
	}
}

func yamlError(name string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	first := strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
	if m := yamlLineRE.FindStringSubmatch(first); m != nil {
		line, _ := strconv.Atoi(m[1])
		reason := m[2]
		reason = yamlUnknownRE.ReplaceAllString(reason, "unknown field \"$1\"")
		return &FileError{File: name, Line: line, Reason: reason, Err: err}
	}
	return &FileError{File: name, Reason: first, Err: err}
}

var (
	yamlTypeRE   = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
	yamlQuotedRE = regexp.MustCompile(`"([^"]+)"`)
)

// decodeError is yamlError for errors of decoding the parsed file into a
// Spec: it names the setting the error is about ("lm.temperature") by
// finding its node in the file, and says what was expected in words.
func decodeError(name string, root *yaml.Node, err error) error {
	fe, ok := yamlError(name, err).(*FileError)
	if !ok || root == nil || len(root.Content) == 0 {
		return fe
	}
	doc := root.Content[0]
	if m := yamlUnknownRE.FindStringSubmatch(err.Error()); m != nil && fe.Line > 0 {
		if path, _ := findNode(doc, "", func(k, _ *yaml.Node) bool { return k.Line == fe.Line && k.Value == m[1] }); path != "" {
			fe.Field = path
			fe.Reason = "unknown field; see docs/program-file.md for the fields of each section"
		}
		return fe
	}
	if m := yamlTypeRE.FindStringSubmatch(fe.Reason); m != nil && fe.Line > 0 {
		if path, _ := findNode(doc, "", func(_, v *yaml.Node) bool { return v.Line == fe.Line && v.Value == m[2] }); path != "" {
			fe.Field = path
			fe.Reason = fmt.Sprintf("expected %s, got %q", goTypeWords(m[3]), m[2])
		}
		return fe
	}
	// An error of a value's own decoder (a duration) carries no line: find
	// the one scalar it quotes.
	if fe.Line == 0 {
		if m := yamlQuotedRE.FindStringSubmatch(fe.Reason); m != nil {
			if path, line := findNode(doc, "", func(_, v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && v.Value == m[1] }); path != "" {
				fe.Field, fe.Line = path, line
			}
		}
	}
	return fe
}

// findNode returns the dotted path and line of the first mapping entry
// (depth first, in file order) for which match holds.
func findNode(n *yaml.Node, prefix string, match func(key, value *yaml.Node) bool) (string, int) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if match(k, v) {
				return join(k.Value), k.Line
			}
			if p, l := findNode(v, join(k.Value), match); p != "" {
				return p, l
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, l := findNode(c, join(strconv.Itoa(i)), match); p != "" {
				return p, l
			}
		}
	}
	return "", 0
}

// goTypeWords says what a Go type expects of a YAML value.
func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	}
	return "a " + t
}

// line finds the line of a dotted path in the file, 0 when unknown.
func (s *Spec) line(path string) int {
	if s.root == nil || len(s.root.Content) == 0 {
		return 0
	}
	n := s.root.Content[0]
	line := n.Line
	for _, key := range strings.Split(path, ".") {
		if i, err := strconv.Atoi(key); err == nil && n.Kind == yaml.SequenceNode {
			if i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			continue
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line = n.Content[i].Line
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}

// FieldError is the *FileError, with the field's line, for a problem with
// field found after parsing (building its endpoint, opening its cache).
func (s *Spec) FieldError(field string, err error, format string, args ...any) *FileError {
	return s.errorf(field, err, format, args...)
}

func (s *Spec) errorf(field string, err error, format string, args ...any) *FileError {
	return &FileError{File: s.file, Field: field, Line: s.line(field), Reason: fmt.Sprintf(format, args...), Err: err}
}

func (s *Spec) validate() error {
	if err := s.validateLM("lm", s.LM); err != nil {
		return err
	}
	names := map[string]bool{}
	for i, m := range s.Models {
		field := fmt.Sprintf("models.%d", i)
		if m.Name == "" {
			return s.errorf(field+".name", nil, "required: the name programs and optimizers refer to")
		}
		if names[m.Name] {
			return s.errorf(field+".name", nil, "duplicate model name %q", m.Name)
		}
		names[m.Name] = true
		if err := s.validateLM(field, m); err != nil {
			return err
		}
	}
	if e := s.Embeddings; e != nil {
		if strings.TrimSpace(e.Model) == "" {
			return s.errorf("embeddings.model", nil, "required: the embedding model name")
		}
		if err := s.checkBaseURL("embeddings.base_url", e.BaseURL); err != nil {
			return err
		}
		if err := s.checkTimeout("embeddings.timeout", e.Timeout); err != nil {
			return err
		}
	}
	switch s.Adapter {
	case "", "chat", "json":
	default:
		return s.errorf("adapter", nil, "%q is not an adapter; expected chat or json", s.Adapter)
	}
	if _, err := s.build(); err != nil {
		return err
	}
	return nil
}

func (s *Spec) validateLM(field string, l LMSpec) error {
	if strings.TrimSpace(l.Model) == "" {
		return s.errorf(field+".model", nil, "required: the model name to call")
	}
	switch l.Provider {
	case "", ProviderOpenAI, ProviderAnthropic:
	default:
		return s.errorf(field+".provider", nil, "%q is not a provider; expected %s or %s", l.Provider, ProviderOpenAI, ProviderAnthropic)
	}
	if err := s.checkBaseURL(field+".base_url", l.BaseURL); err != nil {
		return err
	}
	if err := s.checkTimeout(field+".timeout", l.Timeout); err != nil {
		return err
	}
	if _, err := lm.ParseResponseFormatMode(l.ResponseFormat); err != nil {
		return s.errorf(field+".response_format", nil, "%q is not a response format; expected auto, json_schema, json_object or none", l.ResponseFormat)
	}
	switch {
	case l.MaxResponseBytes < 0:
		return s.errorf(field+".max_response_bytes", nil, "must not be negative, got %d", l.MaxResponseBytes)
	case l.MaxResponseBytes > 0 && l.Provider == ProviderAnthropic:
		return s.errorf(field+".max_response_bytes", nil, "is supported by the %s provider only", ProviderOpenAI)
	}
	if l.Pool.Size < 0 {
		return s.errorf(field+".pool.size", nil, "must be positive, got %d", l.Pool.Size)
	}
	if l.RateLimit.RPM < 0 || l.RateLimit.TPM < 0 {
		return s.errorf(field+".rate_limit", nil, "rpm and tpm must not be negative")
	}
	if l.Retry.MaxAttempts < 0 {
		return s.errorf(field+".retry.max_attempts", nil, "must not be negative, got %d", l.Retry.MaxAttempts)
	}
	return nil
}

// checkBaseURL refuses a base URL the LM clients could not call, at the
// line of field (after ${VAR} expansion; empty means the default).
func (s *Spec) checkBaseURL(field, v string) error {
	if v == "" {
		return nil
	}
	if err := lm.CheckBaseURL(v); err != nil {
		return s.errorf(field, err, "%v", err)
	}
	return nil
}

func (s *Spec) checkTimeout(field, v string) error {
	if v == "" {
		return nil
	}
	if d, err := time.ParseDuration(v); err != nil || d <= 0 {
		return s.errorf(field, err, "%q is not a positive duration such as \"60s\"", v)
	}
	return nil
}

// Providers a program file may name.
const (
	ProviderOpenAI    = "openai"
	ProviderAnthropic = "anthropic"
)

// Params returns the LM's default sampling parameters.
func (l LMSpec) Params() lm.Params {
	return lm.Params{Temperature: l.Temperature, MaxTokens: l.MaxTokens, TopP: l.TopP, N: l.N, Stop: l.Stop, Seed: l.Seed, Extra: l.Extra}
}

// NewAdapter returns the adapter the file names.
func (s *Spec) NewAdapter() adapter.Adapter {
	if s.Adapter == "json" {
		return adapter.JSONAdapter{}
	}
	return &adapter.ChatAdapter{}
}
