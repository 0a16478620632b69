package adapter

import (
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/internal/pystr"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// ChatAdapter is DSPy's default format: each field in its own section headed
// "[[ ## name ## ]]", the answer ending with "[[ ## completed ## ]]". The
// zero value is ready to use and falls back to JSONAdapter when a completion
// cannot be parsed.
type ChatAdapter struct {
	// NoFallback disables the retry with JSONAdapter after a parse error.
	NoFallback bool
}

var _ Adapter = (*ChatAdapter)(nil)

// Name returns "ChatAdapter".
func (*ChatAdapter) Name() string { return "ChatAdapter" }

// Format builds DSPy's chat messages.
func (a *ChatAdapter) Format(sig *signature.Signature, demos []example.Example, inputs map[string]any) ([]lm.Message, error) {
	return format(chatFormat{}, sig, demos, inputs), nil
}

// Prepare leaves the request as it is: the chat format needs no options.
func (*ChatAdapter) Prepare(*signature.Signature, *lm.Request, lm.LM) {}

// Fallback returns JSONAdapter, the adapter a call is repeated with when a
// completion does not parse, or nil when NoFallback is set.
func (a *ChatAdapter) Fallback() Adapter {
	if a.NoFallback {
		return nil
	}
	return JSONAdapter{}
}

// FormatAssistant writes outputs as the assistant message DSPy would expect
// (used for fine-tuning data and demos).
func (*ChatAdapter) FormatAssistant(sig *signature.Signature, outputs map[string]any) string {
	return chatFormat{}.assistantContent(sig, func(k string) (any, bool) { v, ok := outputs[k]; return v, ok }, "")
}

type chatFormat struct{}

func (chatFormat) name() string { return "chat" }

func (chatFormat) fieldStructure(sig *signature.Signature) string {
	parts := []string{
		structureHeader,
		sectionsWithValues(sig.Inputs(), func(f signature.Field) string { return fieldPlaceholder(f, false) }),
		sectionsWithValues(sig.Outputs(), func(f signature.Field) string { return fieldPlaceholder(f, true) }),
		completedMarker + "\n",
	}
	return pystr.Strip(strings.Join(parts, "\n\n"))
}

func (chatFormat) outputRequirements(sig *signature.Signature) string {
	var b strings.Builder
	b.WriteString("Respond with the corresponding output fields, starting with the field ")
	for i, f := range sig.Outputs() {
		if i > 0 {
			b.WriteString(", then ")
		}
		b.WriteString("`[[ ## " + f.Name + " ## ]]`" + typeInfo(f.Type))
	}
	b.WriteString(", and then ending with the marker for `" + completedMarker + "`.")
	return b.String()
}

func (chatFormat) assistantContent(sig *signature.Signature, outputs func(string) (any, bool), missing string) string {
	body := sectionsWithValues(sig.Outputs(), func(f signature.Field) string {
		if v, ok := outputs(f.Name); ok {
			return FormatValue(f.Type, v)
		}
		if missing == "" {
			return "None"
		}
		return missing
	})
	return body + "\n\n" + completedMarker + "\n"
}

// fieldHeader matches a "[[ ## name ## ]]" marker at the start of line,
// returning the name and the rest of the line (DSPy's regex
// `\[\[ ## (\w+) ## \]\]` applied with re.match).
func fieldHeader(line string) (name, rest string, ok bool) {
	const open, close = "[[ ## ", " ## ]]"
	if !strings.HasPrefix(line, open) {
		return "", "", false
	}
	body := line[len(open):]
	end := strings.Index(body, close)
	if end <= 0 {
		return "", "", false
	}
	name = body[:end]
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')) {
			return "", "", false
		}
	}
	return name, body[end+len(close):], true
}

// Parse splits the completion at "[[ ## name ## ]]" marker lines; the first
// section for each output field wins, and its text is parsed by the field's
// type. Optional fields that are absent become nil; any other missing field
// is a *ParseError.
func (a *ChatAdapter) Parse(sig *signature.Signature, completion string) (map[string]any, error) {
	// A section is the text after its marker (rest) and the whole lines
	// lines[from:to] that follow it, up to the next marker.
	type section struct {
		name     string
		rest     string
		from, to int
	}
	lines := pystr.SplitLines(completion)
	var buf [8]section // room for the usual few fields without allocating
	sections := append(buf[:0], section{})
	for i, line := range lines {
		if name, rest, ok := fieldHeader(pystr.Strip(line)); ok {
			sections = append(sections, section{name: name, rest: pystr.Strip(rest), from: i + 1, to: i + 1})
			continue
		}
		sections[len(sections)-1].to = i + 1
	}
	fields := make(map[string]any, sig.NumOutputs())
	for _, s := range sections {
		if s.name == "" {
			continue
		}
		if _, done := fields[s.name]; done {
			continue
		}
		f, ok := sig.Field(s.name)
		if !ok || !sig.IsOutput(s.name) {
			continue
		}
		text := strings.Join(lines[s.from:s.to], "\n")
		if s.rest != "" {
			if s.from == s.to {
				text = s.rest
			} else {
				text = s.rest + "\n" + text
			}
		}
		v, err := f.Type.ParseText(pystr.Strip(text))
		if err != nil {
			return nil, &ParseError{Adapter: a.Name(), Field: s.name, Raw: completion, Err: err}
		}
		fields[s.name] = v
	}
	return completeOutputs(a.Name(), sig, fields, completion)
}

// completeOutputs fills absent optional fields with nil and reports absent
// required fields, as DSPy's apply_output_field_defaults and key check do.
func completeOutputs(adapter string, sig *signature.Signature, fields map[string]any, raw string) (map[string]any, error) {
	var missing []string
	for i := range sig.NumOutputs() {
		f := sig.Output(i)
		if _, ok := fields[f.Name]; ok {
			continue
		}
		if f.Type.Kind == signature.Optional || f.Type.Kind == signature.Any {
			fields[f.Name] = nil
			continue
		}
		missing = append(missing, f.Name)
	}
	if len(missing) > 0 {
		return nil, &ParseError{Adapter: adapter, Missing: missing, Raw: raw}
	}
	return fields, nil
}
