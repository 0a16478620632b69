package adapter

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/internal/jsonrepair"
	"github.com/dspex/dspex/core/internal/pystr"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// JSONAdapter asks for the outputs as one JSON object. The request's
// response_format follows the model's lm.ResponseFormatFor: a strict JSON
// schema of the outputs (OpenAI structured outputs), json_object, or none,
// as DSPy chooses from what it knows of the model. The zero value is ready
// to use.
type JSONAdapter struct{}

var _ Adapter = JSONAdapter{}

// StructuredOutputName names the response schema, as DSPy does.
const StructuredOutputName = "DSPyProgramOutputs"

// Name returns "JSONAdapter".
func (JSONAdapter) Name() string { return "JSONAdapter" }

// Format builds DSPy's JSON-adapter messages.
func (JSONAdapter) Format(sig *signature.Signature, demos []example.Example, inputs map[string]any) ([]lm.Message, error) {
	return format(jsonFormat{}, sig, demos, inputs), nil
}

// Fallback returns nil: a JSONAdapter call that does not parse fails.
func (JSONAdapter) Fallback() Adapter { return nil }

// Prepare sets response_format as lm.ResponseFormatFor(model) says: for
// json_schema, the outputs' strict schema (json_object when the outputs
// cannot be expressed strictly: an open-ended dict); for json_object,
// json_object; for none (and a nil model), nothing.
func (JSONAdapter) Prepare(sig *signature.Signature, req *lm.Request, model lm.LM) {
	if model == nil {
		return
	}
	switch lm.ResponseFormatFor(model) {
	case lm.ResponseFormatJSONSchema:
		if schema := encodedSchema(sig); schema != nil {
			req.ResponseFormat = &lm.ResponseFormat{Type: "json_schema", Name: StructuredOutputName, Schema: schema, Strict: true}
		} else {
			req.ResponseFormat = &lm.ResponseFormat{Type: "json_object"}
		}
	case lm.ResponseFormatJSONObject:
		req.ResponseFormat = &lm.ResponseFormat{Type: "json_object"}
	}
}

type schemaKey struct{}

// encodedSchema is ResponseSchema(sig) encoded, nil when there is none;
// computed once per signature.
func encodedSchema(sig *signature.Signature) json.RawMessage {
	v := sig.Derived(schemaKey{}, func() any {
		schema, err := ResponseSchema(sig)
		if err != nil {
			return json.RawMessage(nil)
		}
		return json.RawMessage(pyjson.Dumps(schema, -1))
	})
	return v.(json.RawMessage)
}

// ResponseSchema is the strict JSON schema of the signature's outputs, as
// DSPy's _get_structured_outputs_response_format builds it: properties and
// "required" in the signature's order, so that a model generating in schema
// order writes ChainOfThought's reasoning before its answer. It fails for
// open-ended mappings, which strict schemas cannot express.
func ResponseSchema(sig *signature.Signature) (pyjson.Object, error) {
	obj := &signature.Type{Kind: signature.Object, Name: StructuredOutputName}
	for _, f := range sig.Outputs() {
		obj.Fields = append(obj.Fields, signature.ObjectField{Name: f.Name, Type: f.Type, Required: true})
	}
	return obj.StrictSchema()
}

// FormatAssistant writes outputs as the assistant message DSPy would expect.
func (JSONAdapter) FormatAssistant(sig *signature.Signature, outputs map[string]any) string {
	return jsonFormat{}.assistantContent(sig, func(k string) (any, bool) { v, ok := outputs[k]; return v, ok }, "")
}

type jsonFormat struct{}

func (jsonFormat) name() string { return "json" }

func (jsonFormat) fieldStructure(sig *signature.Signature) string {
	outs := sig.Outputs()
	obj := make(pyjson.Object, len(outs))
	for i, f := range outs {
		obj[i] = pyjson.Member{Key: f.Name, Value: fieldPlaceholder(f, true)}
	}
	parts := []string{
		structureHeader,
		"Inputs will have the following structure:",
		sectionsWithValues(sig.Inputs(), func(f signature.Field) string { return fieldPlaceholder(f, false) }),
		"Outputs will be a JSON object with the following fields.",
		pyjson.Dumps(obj, 2),
	}
	return pystr.Strip(strings.Join(parts, "\n\n"))
}

func (jsonFormat) outputRequirements(sig *signature.Signature) string {
	var b strings.Builder
	b.WriteString("Respond with a JSON object in the following order of fields: ")
	for i, f := range sig.Outputs() {
		if i > 0 {
			b.WriteString(", then ")
		}
		b.WriteString("`" + f.Name + "`" + typeInfo(f.Type))
	}
	b.WriteString(".")
	return b.String()
}

func (jsonFormat) assistantContent(sig *signature.Signature, outputs func(string) (any, bool), missing string) string {
	outs := sig.Outputs()
	obj := make(pyjson.Object, len(outs))
	for i, f := range outs {
		var v any
		if x, ok := outputs(f.Name); ok {
			v = f.Type.Normalize(x)
		} else if missing != "" {
			v = missing
		}
		obj[i] = pyjson.Member{Key: f.Name, Value: v}
	}
	return pyjson.Dumps(obj, 2)
}

// Parse reads the completion as one JSON object (repairing common breakage,
// or taking the first {...} inside surrounding prose), keeps the signature's
// output fields and converts each to its type.
func (a JSONAdapter) Parse(sig *signature.Signature, completion string) (map[string]any, error) {
	v, ok := jsonrepair.Parse(completion)
	obj, isObj := v.(pyjson.Object)
	if !ok || !isObj {
		if sub, found := jsonrepair.ExtractObject(completion); found {
			v, ok = jsonrepair.Parse(sub)
			obj, isObj = v.(pyjson.Object)
		}
	}
	if !ok || !isObj {
		return nil, &ParseError{Adapter: a.Name(), Raw: completion, Err: errors.New("LM response cannot be read as a JSON object")}
	}
	fields := make(map[string]any, sig.NumOutputs())
	for _, m := range obj {
		if !sig.IsOutput(m.Key) {
			continue
		}
		f, _ := sig.Field(m.Key)
		val, err := f.Type.ParseValue(m.Value)
		if err != nil {
			return nil, &ParseError{Adapter: a.Name(), Field: m.Key, Raw: completion, Err: err}
		}
		fields[m.Key] = val
	}
	return completeOutputs(a.Name(), sig, fields, completion)
}
