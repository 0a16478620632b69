package lmtest

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/dspex/dspex/core/pyjson"
)

// Defaults for DatasetOptions fields left empty.
const (
	DefaultDatasetInput  = "question"
	DefaultDatasetAnswer = "answer"
	DefaultDatasetTopic  = "topic"
)

// maxDatasetLineBytes bounds one line of a dataset file.
const maxDatasetLineBytes = 1 << 20

// DatasetOptions configure how a dataset file is read and how well the
// simulator answers from it. The zero value reads "question", "answer" and
// "topic" keys and uses DefaultSkill.
type DatasetOptions struct {
	// InputKey is the input field whose value identifies an example, both
	// in the file and in prompts. Default DefaultDatasetInput ("question").
	InputKey string
	// AnswerKey is the gold output field. Default DefaultDatasetAnswer
	// ("answer").
	AnswerKey string
	// TopicKey is the optional field naming an example's topic. Default
	// DefaultDatasetTopic ("topic").
	TopicKey string
	// TopicCues adds task cue words for the instruction score: the words
	// under a topic's name count for that topic's questions, those under
	// "" for every question. The words of a topic's own name (of three
	// letters or more, but not "the", "and", "for", "with", "from",
	// "about") always count for it.
	TopicCues map[string][]string
	// Skill is the skill model; nil uses DefaultSkill(). A non-nil Skill
	// is used as given (start from DefaultSkill to change a few values).
	Skill *Skill
}

// Skill holds the parameters of the simulator's skill model. For a prompt
// that asks a dataset question, the chance p that an answer is correct is
//
//	logit = Base
//	      + DemoWeight      · r        (correct demos on the question's topic)
//	      + OtherDemoWeight · o        (correct demos on other topics)
//	      − WrongDemoWeight · w        (demos of dataset questions with a wrong answer)
//	      + InstructionWeight · q      (instruction quality, 0..1)
//	      + ReasoningBonus             (when the prompt asks for a reasoning field)
//	      + TunedWeight · t            (a fine-tuned model: see below)
//	p = clamp(sigmoid(logit), MinP, MaxP)
//
// where r + o counts at most MaxDemos correct demos, relevant ones first.
// A prompt whose demos include the asked question with its gold answer
// gets p = MaxP: the answer is in the prompt. See the package
// documentation for what makes a demo correct and how q is scored.
//
// t is zero except for a model the simulator fine-tuned (see the package
// documentation's fine-tuning section): then it counts the distinct
// dataset questions its training file answered correctly, at most
// TunedMaxExamples of them. This is the simulator's rule, not a claim
// about what fine-tuning does to a real model.
type Skill struct {
	// Base is the logit of a zero-shot prompt with no instruction cues.
	Base float64
	// DemoWeight is added per correct demo on the asked question's topic.
	DemoWeight float64
	// OtherDemoWeight is added per correct demo on another topic.
	OtherDemoWeight float64
	// MaxDemos caps the correct demos that count (relevant ones first).
	MaxDemos int
	// WrongDemoWeight is subtracted per demo with a wrong answer (no cap).
	WrongDemoWeight float64
	// InstructionWeight multiplies the instruction quality (0..1).
	InstructionWeight float64
	// ReasoningBonus is added when the prompt asks for a "reasoning"
	// output field (chain of thought).
	ReasoningBonus float64
	// MinP and MaxP bound p.
	MinP, MaxP float64
	// TunedWeight is added, for a model the simulator fine-tuned, per
	// distinct dataset question its training file answered correctly.
	TunedWeight float64
	// TunedMaxExamples caps the training examples that count.
	TunedMaxExamples int
}

// DefaultSkill returns the default skill model. With it a bare prompt
// (DSPy's default instructions, no demos) answers correctly with
// p = sigmoid(−0.5) ≈ 0.38 (0.43 with chain of thought), and four correct
// demos on the question's topic plus an instruction with every cue reach
// p = sigmoid(1.4) ≈ 0.80 (0.83 with chain of thought). A model fine-tuned
// on ten or more correct answers adds 1.5 to the logit: its bare prompt
// reaches p = sigmoid(1.0) ≈ 0.73.
func DefaultSkill() Skill {
	return Skill{
		Base:              -0.5,
		DemoWeight:        0.3,
		OtherDemoWeight:   0.1,
		MaxDemos:          4,
		WrongDemoWeight:   0.4,
		InstructionWeight: 0.7,
		ReasoningBonus:    0.2,
		MinP:              0.05,
		MaxP:              0.95,
		TunedWeight:       0.15,
		TunedMaxExamples:  10,
	}
}

// Validate reports a skill model that cannot be used.
func (k Skill) Validate() error {
	for _, f := range []float64{k.Base, k.DemoWeight, k.OtherDemoWeight, k.WrongDemoWeight, k.InstructionWeight, k.ReasoningBonus, k.MinP, k.MaxP, k.TunedWeight} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return errors.New("lmtest: skill: parameters must be finite numbers")
		}
	}
	if k.MaxDemos < 0 {
		return fmt.Errorf("lmtest: skill: max demos %d is negative", k.MaxDemos)
	}
	if k.TunedMaxExamples < 0 {
		return fmt.Errorf("lmtest: skill: tuned max examples %d is negative", k.TunedMaxExamples)
	}
	if k.MinP < 0 || k.MaxP > 1 || k.MinP > k.MaxP {
		return fmt.Errorf("lmtest: skill: need 0 <= min p (%g) <= max p (%g) <= 1", k.MinP, k.MaxP)
	}
	return nil
}

// Instruction cue categories and their weights in the instruction quality
// (which is their sum, at most 1). Cues are matched as whole words in the
// lower-cased instructions with `backticked` spans removed (so DSPy's
// default "Given the fields `question`, produce the fields `answer`."
// scores 0); plural "s" and "ies" endings are ignored on both sides.
const (
	FormatCueWeight    = 0.4
	TaskCueWeight      = 0.4
	ReasoningCueWeight = 0.2
)

// formatCues ask for a short, exact answer.
var formatCues = []string{
	"one word", "single word", "a word", "few words", "one or two words",
	"short", "shortest", "brief", "briefly", "concise", "concisely", "succinct", "terse",
	"exact", "exactly", "precise", "precisely",
	"only the answer", "just the answer", "answer only", "nothing else", "no explanation",
}

// reasoningCues ask for care or deliberate reasoning.
var reasoningCues = []string{
	"step by step", "think carefully", "think it through", "think through",
	"carefully", "reason", "double check", "verify",
}

// FormatCues returns the phrases that earn FormatCueWeight.
func FormatCues() []string { return slices.Clone(formatCues) }

// ReasoningCues returns the phrases that earn ReasoningCueWeight.
func ReasoningCues() []string { return slices.Clone(reasoningCues) }

// DatasetExample is one line of a dataset.
type DatasetExample struct {
	// Input is the value of the input key, trimmed.
	Input string
	// Answer is the gold answer as text (non-string values in DSPy's
	// formatting: 8, True, ...).
	Answer string
	// Topic is the topic, "" when the line has none.
	Topic string
	// File and Line say where the example was read (Line counts from 1).
	File string
	Line int
	// fields are every key of the line, in order, for output fields
	// other than the answer.
	fields pyjson.Object
}

// Dataset is a set of examples the simulator answers from, with the skill
// model that decides how often it answers them correctly. It is immutable
// and safe for concurrent use.
type Dataset struct {
	name                          string
	inputKey, answerKey, topicKey string
	skill                         Skill
	examples                      []DatasetExample
	byInput                       map[string]int   // input → example
	byTopic                       map[string][]int // topic → examples
	normAnswers                   []string         // per example, see normAnswer
	topicCues                     map[string][]string
	formatNorm, reasoningNorm     []string // the cue tables, normalized
}

// DatasetError is a bad line in a dataset file.
type DatasetError struct {
	File string
	Line int
	Err  error
}

func (e *DatasetError) Error() string {
	return fmt.Sprintf("lmtest: dataset %s:%d: %v", e.File, e.Line, e.Err)
}

func (e *DatasetError) Unwrap() error { return e.Err }

// LoadDataset reads a JSONL dataset file: one JSON object per line with
// the input key, the answer key and optionally the topic key, e.g.
//
//	{"question": "What is the capital of France?", "answer": "Paris", "topic": "capital"}
//
// Other keys are kept: when a prompt asks for an output field of that
// name, the simulator answers it from the example. Empty lines, lines
// that are not objects, missing or empty inputs and answers, and repeated
// inputs are *DatasetError values naming the file and line.
func LoadDataset(path string, opts DatasetOptions) (*Dataset, error) {
	return LoadDatasetFiles([]string{path}, opts)
}

// LoadDatasetFiles reads several dataset files (say a train and a dev
// split) into one dataset, as LoadDataset reads one. An input may appear
// only once across all of them.
func LoadDatasetFiles(paths []string, opts DatasetOptions) (*Dataset, error) {
	if len(paths) == 0 {
		return nil, errors.New("lmtest: load dataset: no files")
	}
	d, err := newDataset(strings.Join(paths, ", "), opts)
	if err != nil {
		return nil, err
	}
	for _, path := range paths {
		if err := d.loadFile(path); err != nil {
			return nil, err
		}
	}
	return d.finish(opts)
}

func (d *Dataset) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("lmtest: load dataset: %w", err)
	}
	defer f.Close()
	return d.read(f, path)
}

// ReadDataset reads a dataset from r; name is used in errors. See
// LoadDataset.
func ReadDataset(r io.Reader, name string, opts DatasetOptions) (*Dataset, error) {
	d, err := newDataset(name, opts)
	if err != nil {
		return nil, err
	}
	if err := d.read(r, name); err != nil {
		return nil, err
	}
	return d.finish(opts)
}

// read adds the examples of one file.
func (d *Dataset) read(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxDatasetLineBytes)
	line := 0
	for sc.Scan() {
		line++
		if err := d.add(sc.Text(), name, line); err != nil {
			return &DatasetError{File: name, Line: line, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &DatasetError{File: name, Line: line + 1, Err: fmt.Errorf("line longer than %d bytes", maxDatasetLineBytes)}
		}
		return fmt.Errorf("lmtest: read dataset %s: %w", name, err)
	}
	if line == 0 {
		return fmt.Errorf("lmtest: dataset %s: no examples", name)
	}
	return nil
}

// finish adds the configured topic cues once every file is read.
func (d *Dataset) finish(opts DatasetOptions) (*Dataset, error) {
	for topic, words := range opts.TopicCues {
		for _, w := range words {
			if n := normText(w); n != "" {
				d.topicCues[topic] = append(d.topicCues[topic], n)
			}
		}
	}
	return d, nil
}

func newDataset(name string, opts DatasetOptions) (*Dataset, error) {
	d := &Dataset{
		name:      name,
		inputKey:  cmpOr(opts.InputKey, DefaultDatasetInput),
		answerKey: cmpOr(opts.AnswerKey, DefaultDatasetAnswer),
		topicKey:  cmpOr(opts.TopicKey, DefaultDatasetTopic),
		skill:     DefaultSkill(),
		byInput:   map[string]int{},
		byTopic:   map[string][]int{},
		topicCues: map[string][]string{},
	}
	if opts.Skill != nil {
		d.skill = *opts.Skill
	}
	if err := d.skill.Validate(); err != nil {
		return nil, err
	}
	if d.inputKey == d.answerKey || d.inputKey == d.topicKey || d.answerKey == d.topicKey {
		return nil, fmt.Errorf("lmtest: dataset %s: input, answer and topic keys must differ (%q, %q, %q)",
			name, d.inputKey, d.answerKey, d.topicKey)
	}
	for _, c := range formatCues {
		d.formatNorm = append(d.formatNorm, normText(c))
	}
	for _, c := range reasoningCues {
		d.reasoningNorm = append(d.reasoningNorm, normText(c))
	}
	return d, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// add parses one line of file name.
func (d *Dataset) add(text, name string, line int) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return errors.New("empty line; expected a JSON object")
	}
	v, err := pyjson.Decode([]byte(text))
	if err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	obj, ok := v.(pyjson.Object)
	if !ok {
		return errors.New("not a JSON object")
	}
	get := func(key string) (string, error) {
		raw, ok := obj.Get(key)
		if !ok || raw == nil {
			return "", fmt.Errorf("missing key %q", key)
		}
		s := strings.TrimSpace(chatValue(raw))
		if s == "" {
			return "", fmt.Errorf("key %q is empty", key)
		}
		return s, nil
	}
	ex := DatasetExample{File: name, Line: line, fields: obj}
	if ex.Input, err = get(d.inputKey); err != nil {
		return err
	}
	if ex.Answer, err = get(d.answerKey); err != nil {
		return err
	}
	if raw, ok := obj.Get(d.topicKey); ok && raw != nil {
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("key %q must be a string", d.topicKey)
		}
		ex.Topic = strings.TrimSpace(s)
	}
	if i, dup := d.byInput[ex.Input]; dup {
		first := d.examples[i]
		where := fmt.Sprintf("line %d", first.Line)
		if first.File != name {
			where = fmt.Sprintf("%s:%d", first.File, first.Line)
		}
		return fmt.Errorf("%s %q repeats %s", d.inputKey, ex.Input, where)
	}
	i := len(d.examples)
	d.examples = append(d.examples, ex)
	d.normAnswers = append(d.normAnswers, normAnswer(ex.Answer))
	d.byInput[ex.Input] = i
	d.byTopic[ex.Topic] = append(d.byTopic[ex.Topic], i)
	if ex.Topic != "" {
		if _, seen := d.topicCues[ex.Topic]; !seen {
			var cues []string
			for _, w := range strings.Fields(normText(ex.Topic)) {
				if len(w) >= 3 && !isStopWord(w) {
					cues = append(cues, w)
				}
			}
			d.topicCues[ex.Topic] = cues
		}
	}
	return nil
}

func isStopWord(w string) bool {
	switch w {
	case "the", "and", "for", "with", "from", "about":
		return true
	}
	return false
}

// Name returns the name the dataset was read under (its paths, joined
// with ", ").
func (d *Dataset) Name() string { return d.name }

// Len returns the number of examples.
func (d *Dataset) Len() int { return len(d.examples) }

// Examples returns a copy of the examples, in file order.
func (d *Dataset) Examples() []DatasetExample { return slices.Clone(d.examples) }

// InputKey returns the input key the dataset was read with.
func (d *Dataset) InputKey() string { return d.inputKey }

// AnswerKey returns the answer key the dataset was read with.
func (d *Dataset) AnswerKey() string { return d.answerKey }

// Skill returns the skill model in use.
func (d *Dataset) Skill() Skill { return d.skill }

// Lookup returns the index of the example whose input is s (trimmed).
func (d *Dataset) Lookup(s string) (int, bool) {
	i, ok := d.byInput[strings.TrimSpace(s)]
	return i, ok
}

// Assessment is how the skill model sees one prompt.
type Assessment struct {
	// Example is the index of the asked example (see Examples).
	Example int
	// Topic is the asked example's topic.
	Topic string
	// RelevantDemos and OtherDemos count correct demos on the asked topic
	// and on other topics, before the MaxDemos cap; WrongDemos counts
	// demos of dataset questions with a wrong answer; UnknownDemos counts
	// demos whose question is not in the dataset or whose answer is
	// missing (they count for nothing).
	RelevantDemos, OtherDemos, WrongDemos, UnknownDemos int
	// Copied is set when a demo holds the asked question with its gold
	// answer; p is then MaxP.
	Copied bool
	// FormatCue, TaskCue and ReasoningCue tell which instruction cue
	// categories matched; InstructionQuality is the sum of their weights.
	FormatCue, TaskCue, ReasoningCue bool
	InstructionQuality               float64
	// Reasoning is set when the prompt asks for a "reasoning" output.
	Reasoning bool
	// TunedExamples is, for a model the simulator fine-tuned, the
	// distinct dataset questions its training file answered correctly;
	// TunedBonus the logit it added (0 for other models).
	TunedExamples int
	TunedBonus    float64
	// Logit is the skill model's logit; P the probability of a correct
	// answer, sigmoid(Logit) clamped to [MinP, MaxP] (MaxP when Copied).
	Logit, P float64
}

// Assess applies the skill model to a request's messages. It reports
// false when the dataset would not answer them: the system message has no
// DSPy-style output field list including the answer key, or the last user
// message has no input section whose value is a dataset input.
func (d *Dataset) Assess(msgs []Message) (Assessment, bool) {
	p, ok := parsePrompt(systemText(msgs))
	if !ok {
		return Assessment{}, false
	}
	return d.assess(p, msgs)
}

// Probability returns the chance that the simulator answers the request
// correctly, and false when the dataset would not answer it (see Assess).
func (d *Dataset) Probability(msgs []Message) (float64, bool) {
	a, ok := d.Assess(msgs)
	return a.P, ok
}

func (d *Dataset) assess(p *prompt, msgs []Message) (Assessment, bool) {
	if p == nil || !slices.ContainsFunc(p.Outputs, func(f promptField) bool { return f.Name == d.answerKey }) {
		return Assessment{}, false
	}
	last := lastUserIndex(msgs)
	if last < 0 {
		return Assessment{}, false
	}
	q, ok := sectionValue(msgs[last].Content, d.inputKey)
	if !ok {
		return Assessment{}, false
	}
	idx, ok := d.byInput[q]
	if !ok {
		return Assessment{}, false
	}
	ex := d.examples[idx]
	a := Assessment{Example: idx, Topic: ex.Topic}
	a.Reasoning = slices.ContainsFunc(p.Outputs, func(f promptField) bool { return f.Name == "reasoning" })

	// Demos: each assistant message before the last user message, with
	// the user message just before it.
	for i := 1; i < last; i++ {
		if msgs[i].Role != "assistant" || msgs[i-1].Role != "user" {
			continue
		}
		dq, okQ := sectionValue(msgs[i-1].Content, d.inputKey)
		da, okA := demoAnswer(msgs[i].Content, d.answerKey)
		j, known := d.byInput[dq]
		if !okQ || !okA || !known {
			a.UnknownDemos++
			continue
		}
		switch correct := normAnswer(da) == d.normAnswers[j]; {
		case !correct:
			a.WrongDemos++
		case j == idx:
			a.Copied = true
			a.RelevantDemos++
		case d.examples[j].Topic == ex.Topic:
			a.RelevantDemos++
		default:
			a.OtherDemos++
		}
	}

	instr := normText(stripBackticks(instructions(systemText(msgs))))
	a.FormatCue = containsAny(instr, d.formatNorm)
	a.ReasoningCue = containsAny(instr, d.reasoningNorm)
	a.TaskCue = containsAny(instr, d.topicCues[ex.Topic]) || containsAny(instr, d.topicCues[""])
	if a.FormatCue {
		a.InstructionQuality += FormatCueWeight
	}
	if a.TaskCue {
		a.InstructionQuality += TaskCueWeight
	}
	if a.ReasoningCue {
		a.InstructionQuality += ReasoningCueWeight
	}
	a.InstructionQuality = min(1, a.InstructionQuality)

	k := d.skill
	rel := min(a.RelevantDemos, k.MaxDemos)
	other := min(a.OtherDemos, k.MaxDemos-rel)
	a.Logit = k.Base + k.DemoWeight*float64(rel) + k.OtherDemoWeight*float64(other) -
		k.WrongDemoWeight*float64(a.WrongDemos) + k.InstructionWeight*a.InstructionQuality
	if a.Reasoning {
		a.Logit += k.ReasoningBonus
	}
	a.P = k.probability(a.Logit, a.Copied)
	return a, true
}

// probability is sigmoid(logit) clamped to [MinP, MaxP]; MaxP when the
// answer was copied from a demo.
func (k Skill) probability(logit float64, copied bool) float64 {
	if copied {
		return k.MaxP
	}
	return min(k.MaxP, max(k.MinP, 1/(1+math.Exp(-logit))))
}

// datasetChoice is one choice's answer from the dataset.
type datasetChoice struct {
	correct bool
	// fields are the values for the prompt's output fields that the
	// dataset supplies.
	fields map[string]any
}

// answer draws one choice: correct iff u < p, where u is the first draw
// of r; otherwise the fields of a plausible wrong example.
func (d *Dataset) answer(a Assessment, p *prompt, r *rand.Rand) datasetChoice {
	u := r.Float64()
	src, correct := a.Example, u < a.P
	wrongAnswer := ""
	if !correct {
		src = d.confusion(a.Example, r)
		if src < 0 {
			wrongAnswer = "I do not know."
		}
	}
	c := datasetChoice{correct: correct, fields: map[string]any{}}
	answer := wrongAnswer
	if src >= 0 {
		answer = d.examples[src].Answer
	}
	for _, f := range p.Outputs {
		switch {
		case f.Name == d.answerKey:
			if src >= 0 {
				v, _ := d.examples[src].fields.Get(d.answerKey)
				c.fields[f.Name] = v
			} else {
				c.fields[f.Name] = wrongAnswer
			}
		case src >= 0 && f.Name != d.inputKey && hasField(d.examples[src].fields, f.Name):
			v, _ := d.examples[src].fields.Get(f.Name)
			c.fields[f.Name] = v
		case f.Name == "reasoning":
			c.fields[f.Name] = reasoningSentence(d.examples[a.Example].Topic, answer, r)
		}
	}
	return c
}

func hasField(o pyjson.Object, key string) bool {
	v, ok := o.Get(key)
	return ok && v != nil
}

// confusion picks another example to answer instead of example i: one on
// the same topic with a different answer, else any with a different
// answer; -1 when every answer equals example i's.
func (d *Dataset) confusion(i int, r *rand.Rand) int {
	gold := d.normAnswers[i]
	pick := func(pool []int) int {
		if len(pool) == 0 {
			return -1
		}
		// A few random tries find a different answer at once in any
		// ordinary dataset; the scan makes the choice certain.
		for range 8 {
			if j := pool[r.IntN(len(pool))]; d.normAnswers[j] != gold {
				return j
			}
		}
		start := r.IntN(len(pool))
		for k := range pool {
			if j := pool[(start+k)%len(pool)]; d.normAnswers[j] != gold {
				return j
			}
		}
		return -1
	}
	if j := pick(d.byTopic[d.examples[i].Topic]); j >= 0 {
		return j
	}
	all := make([]int, len(d.examples))
	for k := range all {
		all[k] = k
	}
	return pick(all)
}

// reasoningSentence is a plausible reasoning field leading to answer.
func reasoningSentence(topic, answer string, r *rand.Rand) string {
	kind := "factual"
	if topic != "" {
		kind = topic
	}
	switch r.IntN(3) {
	case 0:
		return fmt.Sprintf("This is a %s question. Recalling the relevant fact, the answer is %s.", kind, answer)
	case 1:
		return fmt.Sprintf("The question asks for one %s fact; from what I recall, it is %s.", kind, answer)
	default:
		return fmt.Sprintf("Thinking through this %s question step by step leads to %s.", kind, answer)
	}
}

// lastUserIndex is the index of the last user message, or -1.
func lastUserIndex(msgs []Message) int {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return i
		}
	}
	return -1
}

// outputRequestTails start the paragraph DSPy's adapters append to the
// last input of the final user message.
var outputRequestTails = []string{
	"\n\nRespond with the corresponding output fields",
	"\n\nRespond with a JSON object",
}

// sectionValue returns the trimmed value of the "[[ ## key ## ]]" section
// of a user message, without the output request DSPy appends.
func sectionValue(msg, key string) (string, bool) {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	for _, sec := range userSections(msg) {
		if sec.Name != key {
			continue
		}
		return strings.TrimSpace(withoutOutputRequest(sec.Value)), true
	}
	return "", false
}

// demoAnswer reads the answer field of a demo's assistant message, in
// chat ([[ ## key ## ]]) or JSON form. DSPy's "Not supplied" filler counts
// as no answer.
func demoAnswer(msg, key string) (string, bool) {
	v, ok := sectionValue(msg, key)
	if !ok {
		obj, found := balancedObject(msg)
		if !found {
			return "", false
		}
		parsed, err := pyjson.Decode([]byte(obj))
		if err != nil {
			return "", false
		}
		o, isObj := parsed.(pyjson.Object)
		if !isObj {
			return "", false
		}
		raw, has := o.Get(key)
		if !has || raw == nil {
			return "", false
		}
		v, ok = strings.TrimSpace(chatValue(raw)), true
	}
	if v == "" || strings.HasPrefix(v, "Not supplied for this") {
		return "", false
	}
	return v, ok
}

// objectiveMarker introduces the instructions in DSPy's system message.
const objectiveMarker = "your objective is:"

// instructions returns the text after "your objective is:" in a system
// message, lower-cased, or "".
func instructions(system string) string {
	lower := strings.ToLower(system)
	i := strings.LastIndex(lower, objectiveMarker)
	if i < 0 {
		return ""
	}
	return lower[i+len(objectiveMarker):]
}

// stripBackticks removes `quoted` spans, where DSPy's default instructions
// name fields.
func stripBackticks(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		if r == '`' {
			in = !in
			b.WriteByte(' ')
			continue
		}
		if !in {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// normText lower-cases s, splits it into words of letters and digits,
// drops plural endings and joins the words with single spaces.
func normText(s string) string {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	for i, w := range words {
		words[i] = singular(w)
	}
	return strings.Join(words, " ")
}

// singular drops an English plural ending: "ies" → "y", a final "s"
// (but not "ss", "us", "is").
func singular(w string) string {
	switch {
	case len(w) > 4 && strings.HasSuffix(w, "ies"):
		return w[:len(w)-3] + "y"
	case len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") &&
		!strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		return w[:len(w)-1]
	}
	return w
}

// containsAny reports whether normalized text contains any normalized
// phrase as whole words.
func containsAny(text string, phrases []string) bool {
	if text == "" {
		return false
	}
	padded := " " + text + " "
	for _, p := range phrases {
		if p != "" && strings.Contains(padded, " "+p+" ") {
			return true
		}
	}
	return false
}

// normAnswer is how answers are compared: lower-cased, trimmed, inner
// whitespace collapsed.
func normAnswer(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// messagesKey hashes the roles and contents of the messages.
func messagesKey(msgs []Message) uint64 {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	for _, m := range msgs {
		field(m.Role)
		field(m.Content)
	}
	return binary.LittleEndian.Uint64(h.Sum(nil))
}
