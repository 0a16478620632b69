package lmtest

import (
	"slices"
	"strings"
)

// The proposer behaviour: in dataset mode the simulator also answers the
// prompts with which an instruction optimizer (DSPy's grounded proposer,
// as MIPROv2 runs it) asks a model to describe a dataset or a program and
// to propose an instruction. Its answers are assembled from what the
// prompt contains, by fixed rules documented in docs/simulated-lm.md; they
// measure nothing about a model.

// proposerOutputs are the output fields the proposer behaviour answers,
// DSPy's names: GenerateSingleModuleInstruction's proposed_instruction,
// DatasetDescriptor's observations, ObservationSummarizer's summary,
// DescribeProgram's program_description, DescribeModule's
// module_description.
var proposerOutputs = []string{"proposed_instruction", "observations", "summary", "program_description", "module_description"}

// streamProposer seeds the proposer's hash-based variation.
const streamProposer uint64 = 1 << 41

// Tip is one of DSPy's proposer tips, as the simulator recognises it in a
// prompt's `tip` input.
type Tip string

// DSPy's tips (dspy/propose/grounded_proposer.py TIPS).
const (
	TipNone        Tip = "none"
	TipCreative    Tip = "creative"
	TipSimple      Tip = "simple"
	TipDescription Tip = "description"
	TipHighStakes  Tip = "high_stakes"
	TipPersona     Tip = "persona"
)

// tipWords recognise a tip's text (DSPy's wording) by a word in it, in
// this order; a tip input matching none, or no tip input, is TipNone.
var tipWords = []struct {
	tip  Tip
	word string
}{
	{TipPersona, "persona"},
	{TipHighStakes, "high stakes"},
	{TipCreative, "creative"},
	{TipSimple, "concise"},
	{TipDescription, "descriptive"},
}

// cueRule says whether a proposed instruction carries a cue category:
// always, never, or when a bit of the prompt's hash is set (half of the
// prompts).
type cueRule int

const (
	cueNever cueRule = iota
	cueAlways
	cueHash
)

// tipCues is, per tip, whether the proposed instruction has the format
// cue, names the topics (the task cue) and has the reasoning cue.
var tipCues = map[Tip][3]cueRule{
	TipNone:        {cueHash, cueAlways, cueNever},
	TipSimple:      {cueAlways, cueAlways, cueNever},
	TipDescription: {cueHash, cueAlways, cueAlways},
	TipCreative:    {cueNever, cueHash, cueNever},
	TipHighStakes:  {cueNever, cueHash, cueAlways},
	TipPersona:     {cueHash, cueAlways, cueHash},
}

// ProposedCues returns, for a tip, whether an instruction the proposer
// behaviour writes carries the format, task and reasoning cues, given the
// three bits of its prompt's hash that decide the categories marked
// "hash" in docs/simulated-lm.md. The task cue also needs the prompt to
// show at least one dataset question.
func ProposedCues(tip Tip, bits [3]bool) (format, task, reasoning bool) {
	rules, ok := tipCues[tip]
	if !ok {
		rules = tipCues[TipNone]
	}
	var got [3]bool
	for i, r := range rules {
		got[i] = r == cueAlways || (r == cueHash && bits[i])
	}
	return got[0], got[1], got[2]
}

// isProposerPrompt reports whether one of the prompt's outputs is a
// proposer output.
func isProposerPrompt(p *prompt) bool {
	return p != nil && slices.ContainsFunc(p.Outputs, func(f promptField) bool { return slices.Contains(proposerOutputs, f.Name) })
}

// propose answers a proposer prompt's outputs (see isProposerPrompt); h
// is the choice's hash, from Config.Seed, the messages and the request's
// seed plus the choice's index, so that the n choices of one request
// differ as the choices of a sampling model do.
func (d *Dataset) propose(p *prompt, msgs []Message, h uint64) map[string]any {
	user := lastUserMessage(msgs)
	topics, quotes := d.topicsIn(user)
	tip := TipNone
	if v, ok := sectionValue(user, "tip"); ok {
		lv := strings.ToLower(v)
		for _, tw := range tipWords {
			if strings.Contains(lv, tw.word) {
				tip = tw.tip
				break
			}
		}
	}
	out := map[string]any{}
	for _, f := range p.Outputs {
		switch f.Name {
		case "proposed_instruction":
			out[f.Name] = proposedInstruction(tip, topics, h)
		case "observations", "summary", "program_description", "module_description":
			out[f.Name] = description(f.Name, quotes)
		}
	}
	return out
}

// maxQuotedQuestions bounds the questions a description quotes.
const maxQuotedQuestions = 5

// topicsIn returns the topics of the dataset questions that appear in
// text, in the dataset's order of first appearance, and one question per
// topic (the first in file order) to quote. Examples without a topic
// count as the topic "".
func (d *Dataset) topicsIn(text string) (topics, quotes []string) {
	seen := map[string]bool{}
	for _, ex := range d.examples {
		if seen[ex.Topic] || !strings.Contains(text, ex.Input) {
			continue
		}
		seen[ex.Topic] = true
		topics = append(topics, ex.Topic)
		if len(quotes) < maxQuotedQuestions {
			quotes = append(quotes, ex.Input)
		}
	}
	return topics, quotes
}

// description answers a dataset or program description: it quotes the
// dataset questions the prompt showed, so that a later prompt given this
// description sees them too.
func description(field string, quotes []string) string {
	what := "short factual questions"
	if len(quotes) > 0 {
		qs := make([]string, len(quotes))
		for i, q := range quotes {
			qs[i] = `"` + q + `"`
		}
		what += " such as " + joinList(qs, "and")
	}
	switch field {
	case "observations":
		return "The examples are " + what + ", each paired with its answer."
	case "summary":
		return "The dataset consists of " + what + ", each with its answer."
	case "program_description":
		return "The program answers " + what + " with one predictor that maps a question to its answer."
	default:
		return "This module reads a question, one of " + what + ", and returns its answer."
	}
}

// proposedInstruction writes an instruction for tip, naming topics when
// the task cue is on. Bits 0-2 of h decide the "hash" cue categories,
// bits 8 and up the wording.
func proposedInstruction(tip Tip, topics []string, h uint64) string {
	format, task, reasoning := ProposedCues(tip, [3]bool{h&1 != 0, h&2 != 0, h&4 != 0})
	subject := "questions"
	if task {
		var names []string
		for _, t := range topics {
			if t != "" {
				names = append(names, plural(strings.ToLower(t)))
			}
		}
		if len(names) > 0 {
			subject = "questions about " + joinList(names, "and")
		}
	}
	pick := func(options ...string) string { return options[(h>>8)%uint64(len(options))] }
	var parts []string
	switch tip {
	case TipCreative:
		parts = append(parts, pick(
			"Embark on a journey through the world's trivia and meet each of the "+subject+" with curiosity and flair!",
			"Treat each of the "+subject+" as a riddle from a well-travelled friend, and enjoy the hunt for its solution.",
		))
	case TipHighStakes:
		parts = append(parts, pick(
			"A contestant's prize depends on you: answer the "+subject+" as if everything were riding on it.",
			"Lives depend on getting these "+subject+" right; a mistake cannot be undone.",
		))
	case TipPersona:
		parts = append(parts, pick(
			"You are a seasoned quiz champion who has answered thousands of "+subject+".",
			"You are a well-read librarian who helps visitors with "+subject+".",
		))
	case TipDescription:
		parts = append(parts, "You will be given one of a series of "+subject+", each asking for a single well-known fact that has one correct answer.")
	default:
		parts = append(parts, "Answer the "+subject+".")
	}
	if format {
		parts = append(parts, pick(
			"Reply with only the answer, in one or two words.",
			"Give just the answer, as short and exact as possible.",
		))
	}
	if reasoning {
		parts = append(parts, pick(
			"Think carefully before you answer.",
			"Think it through step by step, and double check the fact.",
		))
	}
	return strings.Join(parts, " ")
}

// plural is a topic name's plural for a sentence: "currency" →
// "currencies", "chemical symbol" → "chemical symbols".
func plural(s string) string {
	switch {
	case s == "" || strings.HasSuffix(s, "s"):
		return s
	case strings.HasSuffix(s, "y") && len(s) > 1 && !strings.ContainsRune("aeiou", rune(s[len(s)-2])):
		return s[:len(s)-1] + "ies"
	}
	return s + "s"
}

// joinList joins items as English does: "a", "a and b", "a, b and c".
func joinList(items []string, conj string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}
