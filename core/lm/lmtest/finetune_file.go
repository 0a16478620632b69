package lmtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// TrainingFileError is a line of a fine-tuning file that is not a chat
// example. Line counts from 1.
type TrainingFileError struct {
	Line int
	Err  error
}

func (e *TrainingFileError) Error() string {
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *TrainingFileError) Unwrap() error { return e.Err }

// TrainingExample is one line of a chat fine-tuning file.
type TrainingExample struct {
	Messages []Message
}

// trainingRoles are the message roles a chat training example may use.
var trainingRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

// ParseTrainingFile reads a chat fine-tuning file in OpenAI's format: one
// JSON object per line, {"messages": [{"role": ..., "content": ...}, ...]},
// with at least one user and one assistant message, the last message the
// assistant's. A final newline (or CRLF) is allowed; any other empty line,
// a line that is not such an object, a role outside system, developer,
// user, assistant and tool, and content that is not a string are
// *TrainingFileError values naming the line. A file with no lines is an
// error too.
func ParseTrainingFile(data []byte) ([]TrainingExample, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("the file is not UTF-8 text")
	}
	text := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("the file has no examples")
	}
	lines := strings.Split(text, "\n")
	out := make([]TrainingExample, 0, len(lines))
	for i, line := range lines {
		ex, err := parseTrainingLine(strings.TrimSuffix(line, "\r"))
		if err != nil {
			return nil, &TrainingFileError{Line: i + 1, Err: err}
		}
		out = append(out, ex)
	}
	return out, nil
}

func parseTrainingLine(line string) (TrainingExample, error) {
	if strings.TrimSpace(line) == "" {
		return TrainingExample{}, errors.New(`empty line; expected a JSON object {"messages": [...]}`)
	}
	var raw struct {
		Messages *[]json.RawMessage `json:"messages"`
	}
	dec := json.NewDecoder(strings.NewReader(line))
	if err := dec.Decode(&raw); err != nil {
		return TrainingExample{}, fmt.Errorf(`not a JSON object {"messages": [...]}: %v`, err)
	}
	if dec.More() {
		return TrainingExample{}, errors.New("text after the JSON object")
	}
	if raw.Messages == nil {
		return TrainingExample{}, errors.New(`missing key "messages"`)
	}
	msgs := *raw.Messages
	if len(msgs) == 0 {
		return TrainingExample{}, errors.New(`"messages" is empty`)
	}
	ex := TrainingExample{Messages: make([]Message, len(msgs))}
	users := 0
	for j, m := range msgs {
		var msg struct {
			Role    *string          `json:"role"`
			Content *json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(m, &msg); err != nil {
			return TrainingExample{}, fmt.Errorf("message %d is not an object with role and content: %v", j+1, err)
		}
		if msg.Role == nil || !trainingRoles[*msg.Role] {
			role := "missing"
			if msg.Role != nil {
				role = fmt.Sprintf("%q", *msg.Role)
			}
			return TrainingExample{}, fmt.Errorf("message %d: role is %s (want system, developer, user, assistant or tool)", j+1, role)
		}
		if msg.Content == nil {
			return TrainingExample{}, fmt.Errorf("message %d: missing content", j+1)
		}
		var content string
		if err := json.Unmarshal(*msg.Content, &content); err != nil {
			return TrainingExample{}, fmt.Errorf("message %d: content must be a string", j+1)
		}
		if *msg.Role == "user" {
			users++
		}
		ex.Messages[j] = Message{Role: *msg.Role, Content: content}
	}
	if users == 0 {
		return TrainingExample{}, errors.New("no user message")
	}
	if last := ex.Messages[len(ex.Messages)-1]; last.Role != "assistant" {
		return TrainingExample{}, fmt.Errorf("the last message is the %s's; it must be the assistant's", last.Role)
	}
	return ex, nil
}

// correctExamples returns the distinct dataset examples that the training
// examples answer correctly: the last user message asks a dataset
// question (its input section) and the final assistant message gives its
// gold answer (the answer section, chat or JSON form).
func (d *Dataset) correctExamples(exs []TrainingExample) map[int]bool {
	out := map[int]bool{}
	if d == nil {
		return out
	}
	for _, ex := range exs {
		msgs := ex.Messages
		last := lastUserIndex(msgs)
		if last < 0 || last != len(msgs)-2 {
			continue
		}
		q, ok := sectionValue(msgs[last].Content, d.inputKey)
		if !ok {
			continue
		}
		i, ok := d.byInput[q]
		if !ok {
			continue
		}
		a, ok := demoAnswer(msgs[len(msgs)-1].Content, d.answerKey)
		if ok && normAnswer(a) == d.normAnswers[i] {
			out[i] = true
		}
	}
	return out
}

// withTuning adds a fine-tuned model's bonus (Skill.TunedWeight per
// distinct correct training example, at most Skill.TunedMaxExamples of
// them) to an assessment and recomputes P.
func (d *Dataset) withTuning(a Assessment, correct int) Assessment {
	k := d.skill
	a.TunedExamples = correct
	a.TunedBonus = k.TunedWeight * float64(min(correct, k.TunedMaxExamples))
	a.Logit += a.TunedBonus
	a.P = k.probability(a.Logit, a.Copied)
	return a
}
