package adapter

import (
	"strconv"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/internal/pystr"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// The wording below is DSPy's (dspy/adapters/chat_adapter.py, base.py,
// utils.py); it must not change, or prompts stop matching DSPy's.
const (
	structureHeader       = "All interactions will be structured in the following way, with the appropriate values filled in."
	incompleteDemoPrefix  = "This is an example of the task, though some input or output fields are not supplied."
	missingInDemo         = "Not supplied for this particular example. "
	missingInCompleteDemo = "Not supplied for this conversation history message. "
	completedMarker       = "[[ ## completed ## ]]"
)

// formatter holds the parts that differ between the chat and JSON formats.
type formatter interface {
	name() string
	fieldStructure(sig *signature.Signature) string
	outputRequirements(sig *signature.Signature) string
	assistantContent(sig *signature.Signature, outputs func(string) (any, bool), missing string) string
}

// format is DSPy's Adapter.format: system message, demos, then the request.
func format(f formatter, sig *signature.Signature, demos []example.Example, inputs map[string]any) []lm.Message {
	msgs := make([]lm.Message, 0, 2+2*len(demos))
	// The system message and the output reminder depend on the signature
	// alone, which never changes: build them once per signature.
	system := sig.Derived(derivedKey{f.name(), "system"}, func() any {
		return fieldDescription(sig) + "\n" + f.fieldStructure(sig) + "\n" + taskDescription(sig)
	}).(string)
	requirements := sig.Derived(derivedKey{f.name(), "requirements"}, func() any {
		return f.outputRequirements(sig)
	}).(string)
	msgs = append(msgs, lm.Message{Role: lm.RoleSystem, Content: system})

	var complete, incomplete []example.Example
	for _, d := range demos {
		switch {
		case isComplete(sig, d):
			complete = append(complete, d)
		case hasAny(sig.Inputs(), d) && hasAny(sig.Outputs(), d):
			incomplete = append(incomplete, d)
		}
	}
	for _, d := range incomplete {
		msgs = append(msgs,
			lm.Message{Role: lm.RoleUser, Content: userContent(sig, d.Get, incompleteDemoPrefix, "")},
			lm.Message{Role: lm.RoleAssistant, Content: f.assistantContent(sig, d.Get, missingInDemo)})
	}
	for _, d := range complete {
		msgs = append(msgs,
			lm.Message{Role: lm.RoleUser, Content: userContent(sig, d.Get, "", "")},
			lm.Message{Role: lm.RoleAssistant, Content: f.assistantContent(sig, d.Get, missingInCompleteDemo)})
	}
	get := func(k string) (any, bool) { v, ok := inputs[k]; return v, ok }
	content := userContent(sig, get, "", requirements)
	if content != "" {
		msgs = append(msgs, lm.Message{Role: lm.RoleUser, Content: content})
	}
	return msgs
}

// derivedKey names a prompt part cached on a signature.
type derivedKey struct{ format, part string }

func isComplete(sig *signature.Signature, d example.Example) bool {
	for _, f := range sig.Fields() {
		if v, ok := d.Get(f.Name); !ok || v == nil {
			return false
		}
	}
	return true
}

func hasAny(fields []signature.Field, d example.Example) bool {
	for _, f := range fields {
		if d.Has(f.Name) {
			return true
		}
	}
	return false
}

// fieldDescription lists the fields with their types and descriptions.
func fieldDescription(sig *signature.Signature) string {
	return "Your input fields are:\n" + describeFields(sig.Inputs()) +
		"\nYour output fields are:\n" + describeFields(sig.Outputs())
}

func describeFields(fields []signature.Field) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(". `")
		b.WriteString(f.Name)
		b.WriteString("` (")
		b.WriteString(f.Type.PythonName())
		b.WriteString("): ")
		b.WriteString(f.Desc)
	}
	return pystr.Strip(b.String())
}

// taskDescription states the instructions, each line indented by 8 spaces,
// as DSPy's format_task_description does: textwrap.dedent, then Python's
// splitlines (which also breaks at \v, \f, U+001C-U+001E, U+0085, U+2028
// and U+2029).
func taskDescription(sig *signature.Signature) string {
	var b strings.Builder
	b.WriteString("In adhering to this structure, your objective is: ")
	for _, line := range pystr.SplitLines(pystr.Dedent(sig.Instructions())) {
		b.WriteString("\n        ")
		b.WriteString(line)
	}
	return b.String()
}

// fieldPlaceholder is DSPy's translate_field_type: "{name}" plus, for typed
// output fields, a note on the value's form.
func fieldPlaceholder(f signature.Field, output bool) string {
	note := ""
	if output {
		note = typeNote(f.Type)
	}
	if note == "" {
		return "{" + f.Name + "}"
	}
	return "{" + f.Name + "}        # note: the value you produce " + note
}

func typeNote(t *signature.Type) string {
	switch {
	case t.IsStr():
		return ""
	case t.Kind == signature.Bool:
		return "must be True or False"
	case t.Kind == signature.Int:
		return "must be a single int value"
	case t.Kind == signature.Float:
		return "must be a single float value"
	case t.Kind == signature.Literal:
		return "must exactly match (no extra characters) one of: " + t.LiteralChoices()
	default:
		return "must adhere to the JSON schema: " + pyjson.Dumps(t.JSONSchema(), -1)
	}
}

// typeInfo is the reminder after each output field in the final user
// message: " (must be formatted as a valid Python list[str])".
func typeInfo(t *signature.Type) string {
	if t.IsStr() {
		return ""
	}
	return " (must be formatted as a valid Python " + t.PythonName() + ")"
}

// sectionsWithValues writes "[[ ## name ## ]]\nvalue" for each field.
func sectionsWithValues(fields []signature.Field, value func(signature.Field) string) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = "[[ ## " + f.Name + " ## ]]\n" + value(f)
	}
	return pystr.Strip(strings.Join(parts, "\n\n"))
}

// userContent is DSPy's format_user_message_content.
func userContent(sig *signature.Signature, get func(string) (any, bool), prefix, suffix string) string {
	parts := make([]string, 1, 3+sig.NumInputs())
	parts[0] = prefix
	for i := range sig.NumInputs() { // Inputs would copy the fields
		f := sig.Input(i)
		if v, ok := get(f.Name); ok {
			parts = append(parts, "[[ ## "+f.Name+" ## ]]\n"+FormatValue(f.Type, v))
		}
	}
	if suffix != "" {
		parts = append(parts, suffix)
	}
	parts = append(parts, "")
	return pystr.Strip(strings.Join(parts, "\n\n"))
}

// FormatValue renders a field value as DSPy's format_field_value does: a
// list given for a str field becomes a numbered list of «blobs»; lists,
// dicts and objects become JSON; anything else Python's str().
func FormatValue(t *signature.Type, v any) string {
	norm := t.Normalize(v)
	if arr, ok := norm.([]any); ok && t.IsStr() {
		return formatList(arr)
	}
	switch norm.(type) {
	case []any, pyjson.Object:
		return pyjson.Dumps(norm, -1)
	}
	return pyjson.Str(norm)
}

func formatList(items []any) string {
	switch len(items) {
	case 0:
		return "N/A"
	case 1:
		return formatBlob(pyjson.Str(items[0]))
	}
	lines := make([]string, len(items))
	for i, it := range items {
		lines[i] = "[" + strconv.Itoa(i+1) + "] " + formatBlob(pyjson.Str(it))
	}
	return strings.Join(lines, "\n")
}

func formatBlob(s string) string {
	if !strings.ContainsAny(s, "\n«»") {
		return "«" + s + "»"
	}
	return "«««\n    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n»»»"
}
