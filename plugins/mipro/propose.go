package mipro

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// maxProposalsInFlight bounds the proposals asked of the prompt model at
// once.
const maxProposalsInFlight = 8

// tips is DSPy's TIPS, in its key order (the RNG picks by index).
var tips = []struct{ key, text string }{
	{"none", ""},
	{"creative", "Don't be afraid to be creative when creating the new instruction!"},
	{"simple", "Keep the instruction clear and concise."},
	{"description", "Make sure your instruction is very informative and descriptive."},
	{"high_stakes", "The instruction should include a high stakes scenario in which the LM must solve the task!"},
	{"persona", `Include a persona that is relevant to the task in the instruction (ie. "You are a ...")`},
}

// The proposer's signatures, DSPy's word for word.
const (
	observationSummarizerText = "Given a series of observations I have made about my dataset, please summarize them into a brief 2-3 sentence summary which highlights only the most important details."
	datasetDescriptorText     = "Given several examples from a dataset please write observations about trends that hold for most or all of the samples. " +
		"Some areas you may consider in your observations: topics, content, syntax, conciseness, etc. " +
		"It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative"
	datasetDescriptorPriorText = "Given several examples from a dataset please write observations about trends that hold for most or all of the samples. " +
		"I will also provide you with a few observations I have already made.  Please add your own observations or if you feel the observations are comprehensive say 'COMPLETE' " +
		"Some areas you may consider in your observations: topics, content, syntax, conciceness, etc. " +
		"It will be useful to make an educated guess as to the nature of the task this dataset will enable. Don't be afraid to be creative"
	describeProgramText = "Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe what type of task this program appears to be designed to solve, and how it appears to work."
	describeModuleText  = "Below is some pseudo-code for a pipeline that solves tasks with calls to language models. Please describe the purpose of one of the specified module in this pipeline."
	generateText        = "Use the information below to learn about a task that we are trying to solve using calls to an LM, then generate a new instruction that will be used to prompt a Language Model to better solve the task."

	programCodeDesc        = "Pseudocode for a language model program designed to solve a particular task."
	programExampleDesc     = "An example of the program in use."
	programDescriptionDesc = "Summary of the task the program is designed to solve, and how it goes about solving it."
)

func mustSig(name, instructions string, inputs, outputs []signature.Field) *signature.Signature {
	sig, err := signature.New(inputs, outputs, instructions)
	if err != nil {
		panic("mipro: signature " + name + ": " + err.Error()) // fixed fields; cannot fail
	}
	return sig.WithName(name)
}

var (
	observationSummarizer = mustSig("ObservationSummarizer", observationSummarizerText,
		[]signature.Field{{Name: "observations", Desc: "Observations I have made about my dataset"}},
		[]signature.Field{{Name: "summary", Desc: "Two to Three sentence summary of only the most significant highlights of my observations"}})
	datasetDescriptor = mustSig("DatasetDescriptor", datasetDescriptorText,
		[]signature.Field{{Name: "examples", Desc: "Sample data points from the dataset"}},
		[]signature.Field{{Name: "observations", Desc: "Somethings that holds true for most or all of the data you observed"}})
	datasetDescriptorPrior = mustSig("DatasetDescriptorWithPriorObservations", datasetDescriptorPriorText,
		[]signature.Field{{Name: "examples", Desc: "Sample data points from the dataset"}, {Name: "prior_observations", Desc: "Some prior observations I made about the data"}},
		[]signature.Field{{Name: "observations", Desc: "Somethings that holds true for most or all of the data you observed or COMPLETE if you have nothing to add"}})
	describeProgram = mustSig("DescribeProgram", describeProgramText,
		[]signature.Field{{Name: "program_code", Desc: programCodeDesc}, {Name: "program_example", Desc: programExampleDesc}},
		[]signature.Field{{Name: "program_description", Desc: "Describe what task the program is designed to solve, and how it goes about solving this task."}})
	describeModule = mustSig("DescribeModule", describeModuleText,
		[]signature.Field{{Name: "program_code", Desc: programCodeDesc}, {Name: "program_example", Desc: programExampleDesc},
			{Name: "program_description", Desc: programDescriptionDesc}, {Name: "module", Desc: "The module in the program that we want to describe."}},
		[]signature.Field{{Name: "module_description", Desc: "Description of the module's role in the broader program."}})
)

// generateInstruction is DSPy's GenerateSingleModuleInstruction as
// generate_instruction_class builds it for MIPROv2 (no instruction
// history): the dataset description only with a summary, the tip only
// with a tip.
func generateInstruction(withSummary, withTip bool) *signature.Signature {
	var in []signature.Field
	if withSummary {
		in = append(in, signature.Field{Name: "dataset_description", Desc: "A description of the dataset that we are using."})
	}
	in = append(in,
		signature.Field{Name: "program_code", Desc: "Language model program designed to solve a particular task."},
		signature.Field{Name: "program_description", Desc: programDescriptionDesc},
		signature.Field{Name: "module", Desc: "The module to create an instruction for."},
		signature.Field{Name: "module_description", Desc: "Description of the module to create an instruction for."},
		signature.Field{Name: "task_demos", Desc: "Example inputs/outputs of our module."},
		signature.Field{Name: "basic_instruction", Desc: "Basic instruction."},
	)
	if withTip {
		in = append(in, signature.Field{Name: "tip", Desc: "A suggestion for how to go about generating the new instruction."})
	}
	return mustSig("GenerateSingleModuleInstruction", generateText, in,
		[]signature.Field{{Name: "proposed_instruction", Desc: "Propose an instruction that will be used to prompt a Language Model to perform this task."}})
}

// stripPrefixRE is DSPy's strip_prefix pattern (\w as Python's, Unicode).
var stripPrefixRE = regexp.MustCompile(`^[\*\s]*(([\p{L}\p{N}_'\-]+\s+){0,4}[\p{L}\p{N}_'\-]+):\s*`)

// stripPrefix is DSPy's strip_prefix: drop a leading "Label:" of up to
// five words, then quotes at both ends.
func stripPrefix(s string) string {
	return strings.Trim(stripPrefixRE.ReplaceAllString(s, ""), `"`)
}

// call runs a one-off predictor on the context's LM and returns an output.
func call(ctx context.Context, sig *signature.Signature, params lm.Params, inputs module.Inputs, out string) (string, error) {
	p := module.NewPredict(sig, module.WithConfig(params))
	pred, err := p.Forward(ctx, inputs)
	if err != nil {
		return "", err
	}
	v, _ := pred.Get(out)
	if v == nil {
		return "", nil
	}
	return pyjson.Str(v), nil
}

// examplesRepr is Python's repr of a list of dspy.Examples, with each
// input_keys set sorted (DSPy's order_input_keys_in_string).
func examplesRepr(exs []example.Example) string {
	parts := make([]string, len(exs))
	for i, e := range exs {
		obj := pyjson.Object{}
		for _, m := range e.Object() {
			if !strings.HasPrefix(m.Key, "dspy_") {
				obj = append(obj, pyjson.Member{Key: m.Key, Value: m.Value})
			}
		}
		keys := make([]string, 0)
		for _, k := range e.InputKeys() {
			keys = append(keys, pyjson.Repr(k))
		}
		slices.Sort(keys)
		inputs := "{" + strings.Join(keys, ", ") + "}"
		if len(keys) == 0 {
			inputs = "set()" // Python's repr of an empty set; the pattern leaves it
		}
		parts[i] = "Example(" + pyjson.Repr(obj) + ") (input_keys=" + inputs + ")"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// datasetSummary is DSPy's create_dataset_summary: observations on the
// first batch, more batch by batch (at most 9 more calls) until the model
// says "COMPLETE" five times, then a summary of them.
func (r *run) datasetSummary(ctx context.Context) (string, error) {
	b := r.s.viewBatch
	params := lm.Params{N: lm.Int(1), Temperature: lm.Float(1.0)}
	observations, err := call(ctx, datasetDescriptor, params, module.Inputs{"examples": examplesRepr(r.train[:min(len(r.train), b)])}, "observations")
	if err != nil {
		return "", err
	}
	skips, calls := 0, 0
	for start := b; start < len(r.train); start += b {
		calls++
		if calls >= 10 {
			break
		}
		out, err := call(ctx, datasetDescriptorPrior, params, module.Inputs{
			"prior_observations": observations, "examples": examplesRepr(r.train[start:min(len(r.train), start+b)]),
		}, "observations")
		if err != nil {
			break // DSPy summarizes the observations so far
		}
		if len(out) >= 8 && strings.ToUpper(out[:8]) == "COMPLETE" {
			skips++
			if skips >= 5 {
				break
			}
			continue
		}
		observations += out
	}
	summary, err := call(ctx, observationSummarizer, params, module.Inputs{"observations": observations}, "summary")
	if err != nil {
		return "", err
	}
	return stripPrefix(summary), nil
}

// programCode stands in for DSPy's get_dspy_source_code, which reads the
// Python source: Python-like pseudo-code of each predictor's signature and
// the predictors in order. For a lone Predict or ChainOfThought DSPy reads
// no source and gives "\n\n"; so does DSPEx.
func programCode(p module.Program) string {
	switch p.(type) {
	case *module.Predict, *module.ChainOfThought:
		return "\n\n"
	}
	var b strings.Builder
	for _, np := range p.NamedPredictors() {
		sig := np.Predictor.Signature()
		name := sig.Name()
		if name == "" {
			name = "StringSignature"
		}
		fmt.Fprintf(&b, "class %s(dspy.Signature):\n    %s\n", name, strconv.Quote(sig.Instructions()))
		for _, f := range sig.Inputs() {
			fmt.Fprintf(&b, "    %s = dspy.InputField(desc=%s)\n", f.Name, pyjson.Repr(f.Desc))
		}
		for _, f := range sig.Outputs() {
			fmt.Fprintf(&b, "    %s = dspy.OutputField(desc=%s)\n", f.Name, pyjson.Repr(f.Desc))
		}
		b.WriteString("\n")
	}
	b.WriteString("class Program(dspy.Module):\n    def __init__(self):\n")
	for _, np := range p.NamedPredictors() {
		name := np.Predictor.Signature().Name()
		if name == "" {
			name = "StringSignature"
		}
		fmt.Fprintf(&b, "        self.%s = dspy.Predict(%s)\n", strings.ReplaceAll(np.Name, ".", "_"), name)
	}
	return b.String()
}

// moduleCode is DSPy's "Predict(inputs) -> outputs".
func moduleCode(sig *signature.Signature) string {
	names := func(fs []signature.Field) string {
		out := make([]string, len(fs))
		for i, f := range fs {
			out[i] = f.Name
		}
		return strings.Join(out, ", ")
	}
	return "Predict(" + names(sig.Inputs()) + ") -> " + names(sig.Outputs())
}

// exampleString is DSPy's create_example_string: "Prefix: value" per field
// of the signature.
func exampleString(sig *signature.Signature, e example.Example) string {
	var lines []string
	for _, f := range sig.Fields() {
		v, ok := e.Get(f.Name)
		val := "None"
		if ok {
			val = pyjson.Str(v)
		}
		lines = append(lines, f.Prefix+" "+val)
	}
	return strings.Join(lines, "\n")
}

// taskDemos gathers up to 3 bootstrapped demos, from set i, the sets after
// it, then those before it (DSPy's gather_examples_from_sets).
func taskDemos(sig *signature.Signature, sets [][]example.Example, i int) string {
	if i == 0 || len(sets) == 0 {
		return "No task demos provided."
	}
	order := append(append([][]example.Example{sets[i]}, sets[i+1:]...), sets[:i]...)
	var strs []string
	for _, set := range order {
		for _, e := range set {
			if e.Has("augmented") {
				strs = append(strs, exampleString(sig, e))
				if len(strs) >= bootstrappedInContext {
					break
				}
			}
		}
		if len(strs) >= bootstrappedInContext {
			break
		}
	}
	out := strings.Join(strs, "\n\n") + "\n\n"
	if strings.TrimSpace(out) == "" {
		return "No task demos provided."
	}
	return out
}

// propose is DSPy's GroundedProposer as MIPROv2 configures it: a dataset
// summary, then per predictor numInstruct proposals, each with a random tip
// and its own rollout id (rng.randint(0, 10**9)) at InitTemperature, the
// program and module described and the instruction generated on that
// rollout. Candidate 0 is the original instruction: DSPy proposes one and
// overwrites it; DSPEx draws the same random numbers but skips those calls.
// The draws come first, in DSPy's order; the proposals then run
// concurrently (each depends only on its draws), at most
// min(Concurrency, maxProposalsInFlight) at once.
func (r *run) propose(ctx context.Context, demos [][][]example.Example, res *Result) error {
	summary, err := r.datasetSummary(ctx)
	withSummary := err == nil
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res.SummaryError = err.Error()
	}
	res.DatasetSummary = summary
	code := programCode(r.program)
	preds := r.program.NamedPredictors()
	numSets := r.s.numInstruct
	if len(demos) > 0 && len(demos[0]) > 0 {
		numSets = len(demos[0])
	}
	n := min(r.s.numInstruct, numSets)
	// The random draws first, in DSPy's order; then the calls, at once.
	props := make([]Proposal, 0, n*len(preds))
	tipText := make([]string, 0, n*len(preds))
	for pi, np := range preds {
		for di := range n {
			tipIdx, err := r.rng.Choice(len(tips))
			if err != nil {
				return fmt.Errorf("mipro: pick a tip: %w", err)
			}
			rollout, err := r.rng.Randint(0, 1_000_000_000)
			if err != nil {
				return fmt.Errorf("mipro: pick a rollout id: %w", err)
			}
			props = append(props, Proposal{Predictor: pi, Index: di, Tip: tips[tipIdx].key, RolloutID: strconv.Itoa(rollout),
				Instruction: np.Predictor.Signature().Instructions()})
			tipText = append(tipText, tips[tipIdx].text)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
		sem  = make(chan struct{}, min(r.s.concurrency, maxProposalsInFlight))
	)
	for i := range props {
		prop := &props[i]
		if prop.Index == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			sig := preds[prop.Predictor].Predictor.Signature()
			rctx := module.WithParams(module.WithRolloutID(ctx, prop.RolloutID), lm.Params{Temperature: lm.Float(r.s.temperature)})
			var sets [][]example.Example
			if len(demos) > prop.Predictor {
				sets = demos[prop.Predictor]
			}
			got, err := r.proposeOne(rctx, sig, code, summary, withSummary, taskDemos(sig, sets, prop.Index), tipText[i])
			switch {
			case err != nil:
				prop.Fallback = "prompt model failed: " + err.Error()
			case strings.TrimSpace(got) == "":
				prop.Fallback = "the prompt model proposed an empty instruction"
			default:
				prop.Instruction = got
			}
			mu.Lock()
			done++
			progress(ctx, "mipro: instructions", done, len(props)-len(preds))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	res.Instructions = make([][]string, len(preds))
	for _, prop := range props {
		res.Instructions[prop.Predictor] = append(res.Instructions[prop.Predictor], prop.Instruction)
		// One event per candidate, in candidate order (the proposals ran
		// concurrently).
		publish(ctx, event.OptimizerInstruction, &event.OptimizerInstructionInfo{Optimizer: Name,
			Predictor: preds[prop.Predictor].Name, Index: prop.Index, Instruction: prop.Instruction,
			Tip: prop.Tip, RolloutID: prop.RolloutID, Fallback: prop.Fallback})
	}
	res.Proposals = props
	return nil
}

// proposeOne is DSPy's GenerateModuleInstruction.forward with the
// program-aware proposer: describe the program, then the module, then
// generate the instruction.
func (r *run) proposeOne(ctx context.Context, sig *signature.Signature, code, summary string, withSummary bool, demos, tip string) (string, error) {
	progDesc, modDesc, modCode := "Not available", "Not provided", "Not provided"
	desc, err := call(ctx, describeProgram, lm.Params{}, module.Inputs{"program_code": code, "program_example": demos}, "program_description")
	if err == nil {
		progDesc = stripPrefix(desc)
		modCode = moduleCode(sig)
		modDesc, err = call(ctx, describeModule, lm.Params{}, module.Inputs{
			"program_code": code, "program_description": progDesc, "program_example": demos, "module": modCode,
		}, "module_description")
	}
	if err != nil {
		// DSPy goes on without the program-aware parts.
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		progDesc, modDesc, modCode = "Not available", "Not provided", "Not provided"
	}
	inputs := module.Inputs{
		"program_code": code, "program_description": progDesc, "module": modCode, "module_description": modDesc,
		"task_demos": demos, "basic_instruction": sig.Instructions(),
	}
	if withSummary {
		inputs["dataset_description"] = summary
	}
	if tip != "" {
		inputs["tip"] = tip
	}
	out, err := call(ctx, generateInstruction(withSummary, tip != ""), lm.Params{}, inputs, "proposed_instruction")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(stripPrefix(out)), nil
}
