package lmtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/dspex/dspex/core/pyjson"
)

// maxScriptBytes bounds script files.
const maxScriptBytes = 16 << 20

// Script scripts the simulator's answers. Rules are checked in order for
// every chat completion; the first rule that matches (and has uses left)
// answers. Output fields a rule does not give get placeholders, and a
// request no rule matches is answered with placeholders only.
//
// A Script must not be modified after it is passed to New.
type Script struct {
	Rules []Rule `yaml:"rules"`
}

// Rule is one scripted answer.
type Rule struct {
	// Match is a substring that must occur in the last user message (or in
	// any message when MatchAnyMessage is set). An empty Match matches
	// every request.
	Match string `yaml:"match"`
	// MatchAnyMessage searches every message, the system message and
	// few-shot demos included, instead of only the last user message.
	MatchAnyMessage bool `yaml:"match_any_message"`
	// Fields maps output field names to values. Strings are written as
	// given; other values are formatted for the adapter (Python style in
	// chat mode, typed JSON in JSON mode). In JSON mode a string given for
	// a typed field is decoded as JSON when it parses. Fields the prompt
	// does not ask for are ignored.
	Fields map[string]any `yaml:"fields"`
	// Raw, when set, is returned verbatim as the completion text instead
	// of formatting fields; Fields must then be empty.
	Raw string `yaml:"raw"`
	// Times limits how often the rule is used; after that it is skipped.
	// Zero means without limit.
	Times int `yaml:"times"`
}

// Validate reports the first problem with the script's rules.
func (s *Script) Validate() error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("lmtest: script: %w", err)
	}
	return nil
}

func (s *Script) validate() error {
	if s == nil {
		return nil
	}
	for i, r := range s.Rules {
		if r.Times < 0 {
			return fmt.Errorf("rule %d: times %d is negative", i+1, r.Times)
		}
		if r.Raw != "" && len(r.Fields) > 0 {
			return fmt.Errorf("rule %d: raw and fields cannot both be set", i+1)
		}
		for name := range r.Fields {
			if strings.TrimSpace(name) == "" {
				return fmt.Errorf("rule %d: empty field name", i+1)
			}
		}
	}
	return nil
}

// LoadScript reads a YAML (or JSON) script file:
//
//	rules:
//	  - match: "capital of France"
//	    fields:
//	      answer: Paris
//	      confidence: 0.9
//	  - match: "broken"
//	    raw: "no markers here"
//	    times: 2
//
// Unknown keys are errors, so a misspelt key does not silently match
// everything. Mapping values keep their key order.
func LoadScript(path string) (*Script, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lmtest: load script: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxScriptBytes+1))
	if err != nil {
		return nil, fmt.Errorf("lmtest: load script %s: %w", path, err)
	}
	if len(data) > maxScriptBytes {
		return nil, fmt.Errorf("lmtest: load script %s: larger than %d bytes", path, maxScriptBytes)
	}
	s, err := parseScript(data)
	if err != nil {
		return nil, fmt.Errorf("lmtest: load script %s: %w", path, err)
	}
	return s, nil
}

// rawRule mirrors Rule with field values kept as YAML nodes, so that
// mappings keep their order.
type rawRule struct {
	Match           string               `yaml:"match"`
	MatchAnyMessage bool                 `yaml:"match_any_message"`
	Fields          map[string]yaml.Node `yaml:"fields"`
	Raw             string               `yaml:"raw"`
	Times           int                  `yaml:"times"`
}

// ParseScript reads a script from YAML (or JSON) text. See LoadScript.
func ParseScript(data []byte) (*Script, error) {
	s, err := parseScript(data)
	if err != nil {
		return nil, fmt.Errorf("lmtest: parse script: %w", err)
	}
	return s, nil
}

func parseScript(data []byte) (*Script, error) {
	var raw struct {
		Rules []rawRule `yaml:"rules"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("script is empty")
		}
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	s := &Script{Rules: make([]Rule, len(raw.Rules))}
	for i, rr := range raw.Rules {
		r := Rule{Match: rr.Match, MatchAnyMessage: rr.MatchAnyMessage, Raw: rr.Raw, Times: rr.Times}
		if len(rr.Fields) > 0 {
			r.Fields = make(map[string]any, len(rr.Fields))
			for name, node := range rr.Fields {
				v, err := nodeValue(&node, 0)
				if err != nil {
					return nil, fmt.Errorf("rule %d: field %s: %w", i+1, name, err)
				}
				r.Fields[name] = v
			}
		}
		s.Rules[i] = r
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// nodeValue converts a YAML node to the JSON model, keeping mapping order
// (pyjson.Object) and resolving aliases.
func nodeValue(n *yaml.Node, depth int) (any, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("line %d: nested too deeply", n.Line)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return nodeValue(n.Content[0], depth+1)
	case yaml.AliasNode:
		return nodeValue(n.Alias, depth+1)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := nodeValue(c, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		out := make(pyjson.Object, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			var key string
			if err := n.Content[i].Decode(&key); err != nil {
				return nil, fmt.Errorf("line %d: mapping key: %w", n.Content[i].Line, err)
			}
			v, err := nodeValue(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, pyjson.Member{Key: key, Value: v})
		}
		return out, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return pyjson.Normalize(v), nil
	}
	return nil, nil
}

// matches reports whether the rule applies to a request's messages.
func (r *Rule) matches(msgs []Message) bool {
	if r.Match == "" {
		return true
	}
	if r.MatchAnyMessage {
		for _, m := range msgs {
			if strings.Contains(m.Content, r.Match) {
				return true
			}
		}
		return false
	}
	return strings.Contains(lastUserMessage(msgs), r.Match)
}

// lastUserMessage returns the content of the last user message, or of the
// last message when there is no user message.
func lastUserMessage(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Content
		}
	}
	if len(msgs) > 0 {
		return msgs[len(msgs)-1].Content
	}
	return ""
}
