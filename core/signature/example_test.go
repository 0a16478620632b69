package signature_test

import (
	"fmt"

	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

func ExampleParse() {
	sig, err := signature.Parse("question, context: list[str] -> answer, confidence: float")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sig.Instructions())
	for _, f := range sig.Outputs() {
		fmt.Println(f.Name, f.Type.PythonName(), pyjson.Dumps(f.Type.JSONSchema(), -1))
	}
	_, err = signature.Parse("question -> answer: lst[str]")
	fmt.Println(err)
	// Output:
	// Given the fields `question`, `context`, produce the fields `answer`, `confidence`.
	// answer str {"type": "string"}
	// confidence float {"type": "number"}
	// signature "question -> answer: lst[str]": column 21: unknown type "lst"; expected str, int, float, bool, list[T], dict[str, T], Literal[...], Any, T | None, or an object type passed to ParseWith
}

type QA struct {
	Question string `json:"question" desc:"a trivia question"`
}

type Answer struct {
	Answer string `json:"answer"`
	Sure   bool   `json:"sure"`
}

func (Answer) Instructions() string { return "Answer the trivia question." }

func ExampleFor() {
	sig := signature.MustFor[QA, Answer]()
	fmt.Println(sig)
	fmt.Println(sig.Instructions())
	// Output:
	// question -> answer, sure: bool
	// Answer the trivia question.
}
