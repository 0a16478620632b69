package lmtest

import (
	"fmt"
	"strings"
	"testing"
)

// Every instruction the proposer behaviour writes carries exactly the cue
// categories its tip's rules give, as the skill model scores them.
func TestProposedInstructionCues(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	tips := []Tip{TipNone, TipSimple, TipDescription, TipCreative, TipHighStakes, TipPersona}
	for _, tip := range tips {
		for h := range uint64(8) {
			for _, wording := range []uint64{0, 1 << 8} {
				for _, topics := range [][]string{{"capital", "currency"}, nil} {
					instr := proposedInstruction(tip, topics, h|wording)
					t.Run(fmt.Sprintf("%s/%d/%d/%d", tip, h, wording>>8, len(topics)), func(t *testing.T) {
						format, task, reasoning := ProposedCues(tip, [3]bool{h&1 != 0, h&2 != 0, h&4 != 0})
						task = task && len(topics) > 0
						for _, q := range []string{"What is the capital of France?", "What is the currency of Japan?"} {
							a, ok := d.Assess(dsPrompt(false, answerOnly, instr, nil, q))
							if !ok {
								t.Fatal("not answered")
							}
							if a.FormatCue != format || a.TaskCue != task || a.ReasoningCue != reasoning {
								t.Errorf("%q on %q: cues %v %v %v, want %v %v %v", instr, q,
									a.FormatCue, a.TaskCue, a.ReasoningCue, format, task, reasoning)
							}
						}
						// A topic the prompt did not show is not named.
						if a, _ := d.Assess(dsPrompt(false, answerOnly, instr, nil, "Who wrote Hamlet?")); a.TaskCue {
							t.Errorf("%q names the topic solo", instr)
						}
					})
				}
			}
		}
	}
	// The rules themselves: simple is always format and task; creative
	// never has the format or reasoning cue.
	for _, bits := range [][3]bool{{}, {true, true, true}} {
		if f, tk, r := ProposedCues(TipSimple, bits); !f || !tk || r {
			t.Errorf("simple %v: %v %v %v", bits, f, tk, r)
		}
		if f, _, r := ProposedCues(TipCreative, bits); f || r {
			t.Errorf("creative %v: format %v reasoning %v", bits, f, r)
		}
	}
}

var proposerInputs = []tf{{name: "program_code", typ: "str"}, {name: "task_demos", typ: "str"}, {name: "basic_instruction", typ: "str"}, {name: "tip", typ: "str"}}

// proposerMessages is a GenerateSingleModuleInstruction prompt with demos
// and a tip.
func proposerMessages(demos, tip string) []Message {
	sys := strings.TrimSuffix(chatSystem(proposerInputs, []tf{{name: "proposed_instruction", typ: "str"}}), "Answer the question.") +
		"Use the information below to learn about a task that we are trying to solve using calls to an LM, then generate a new instruction."
	user := "[[ ## program_code ## ]]\nclass Program(dspy.Module): ...\n\n[[ ## task_demos ## ]]\n" + demos +
		"\n\n[[ ## basic_instruction ## ]]\nGiven the fields `question`, produce the fields `answer`.\n\n[[ ## tip ## ]]\n" + tip +
		"\n\nRespond with the corresponding output fields, starting with the field `[[ ## proposed_instruction ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
	return []Message{{Role: "system", Content: sys}, {Role: "user", Content: user}}
}

// Through the server: the proposer behaviour answers instruction proposals
// and descriptions from what the prompt shows, the same prompt the same
// way; without a dataset they get placeholders.
func TestProposerBehaviour(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	s := startServer(t, Config{Dataset: d})
	demos := "Question: What is the capital of Italy?\nAnswer: Rome\n\nQuestion: What is the currency of India?\nAnswer: Rupee"
	propose := func(s *Server, demos, tip string) string {
		t.Helper()
		r := complete(t, s, dsBody(proposerMessages(demos, tip), nil))
		_, vals := sections(r.Choices[0].Message.Content)
		return vals["proposed_instruction"]
	}
	simple := propose(s, demos, "Keep the instruction clear and concise.")
	if again := propose(s, demos, "Keep the instruction clear and concise."); again != simple {
		t.Errorf("the same prompt proposed %q, then %q", simple, again)
	}
	if !strings.Contains(simple, "capitals and currencies") {
		t.Errorf("simple tip: %q does not name the topics shown", simple)
	}
	if a, _ := d.Assess(dsPrompt(false, answerOnly, simple, nil, "What is the capital of Peru?")); a.InstructionQuality != FormatCueWeight+TaskCueWeight {
		t.Errorf("simple tip: %q has quality %v", simple, a.InstructionQuality)
	}
	if creative := propose(s, demos, "Don't be afraid to be creative when creating the new instruction!"); creative == simple {
		t.Error("the creative and simple tips proposed the same instruction")
	}
	// The n choices of one request differ as a sampling model's do;
	// choice i with seed s is choice 0 with seed s+i.
	body := dsBody(proposerMessages(demos, ""), map[string]any{"n": 8, "seed": 5})
	r8 := complete(t, s, body)
	distinct := map[string]bool{}
	for _, c := range r8.Choices {
		_, vals := sections(c.Message.Content)
		distinct[vals["proposed_instruction"]] = true
	}
	if len(distinct) < 2 {
		t.Errorf("8 choices gave %d distinct instructions", len(distinct))
	}
	r1 := complete(t, s, dsBody(proposerMessages(demos, ""), map[string]any{"seed": 8}))
	if r1.Choices[0].Message.Content != r8.Choices[3].Message.Content {
		t.Errorf("choice 0 with seed 8 %q, choice 3 with seed 5 %q", r1.Choices[0].Message.Content, r8.Choices[3].Message.Content)
	}
	if none := propose(s, "No task demos provided.", "Keep the instruction clear and concise."); strings.Contains(none, "capital") {
		t.Errorf("without dataset questions in the prompt: %q", none)
	}

	// A dataset description quotes one question per topic it saw, so that
	// a proposal given the description sees them too.
	obs := chatSystem([]tf{{name: "examples", typ: "str"}}, []tf{{name: "observations", typ: "str"}})
	r := complete(t, s, chatBody(obs, "[[ ## examples ## ]]\n[Example({'question': 'What is the capital of Spain?', 'answer': 'Madrid'}), Example({'question': 'Who wrote Hamlet?', 'answer': 'William Shakespeare'})]", nil))
	_, vals := sections(r.Choices[0].Message.Content)
	if want := `"What is the capital of Spain?" and "Who wrote Hamlet?"`; !strings.Contains(vals["observations"], want) {
		t.Errorf("observations %q do not quote %s", vals["observations"], want)
	}
	if got := s.Stats().ProposerHits; got != 7 {
		t.Errorf("ProposerHits = %d, want 7", got)
	}
	if got := s.Stats().DatasetHits; got != 0 {
		t.Errorf("DatasetHits = %d, want 0", got)
	}

	plain := startServer(t, Config{})
	if got := propose(plain, demos, "Keep the instruction clear and concise."); strings.Contains(got, "capitals") {
		t.Errorf("without a dataset: %q", got)
	}
}
