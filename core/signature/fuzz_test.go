package signature

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"question -> answer",
		"question, context: list[str] -> answer, confidence: float",
		"x: dict[str, list[int]] -> y: Literal['a', \"b\", 3, True]",
		"x: str | None -> y: Optional[list[str]]",
		"q -> a: Union[int, None]",
		"q: lst[str] -> a",
		"-> a",
		"a -> b -> c",
		"q -> a: Literal['unterminated",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *ParseError: %v", err)
			}
			_ = pe.Error()
			return
		}
		// A parsed signature must survive a round trip through its string form.
		again, err := Parse(sig.String())
		if err != nil {
			t.Fatalf("round trip of %q (%q) failed: %v", s, sig.String(), err)
		}
		if again.String() != sig.String() {
			t.Fatalf("round trip changed %q to %q", sig.String(), again.String())
		}
		for _, fl := range sig.Fields() {
			_ = fl.Type.JSONSchema()
		}
	})
}

func FuzzParseText(f *testing.F) {
	for _, s := range []string{"42", "[1, 2]", `{"a": [1, {"b": null}]}`, "True", "```json\n{}\n```", "'x'", "[[[[", "{'a': 1,}"} {
		f.Add(s)
	}
	types := []*Type{IntType, FloatType, BoolType, ListOf(IntType), DictOf(AnyType), OptionalOf(ListOf(StringType)), LiteralOf("a", "b"), MustObjectOf[address]()}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range types {
			v, err := typ.ParseText(s)
			if err != nil {
				continue
			}
			if _, err := typ.Coerce(v); err != nil {
				t.Fatalf("%s: parsed value %#v does not validate again: %v", typ.PythonName(), v, err)
			}
		}
	})
}
