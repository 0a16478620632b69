package teleprompt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// Defaults of COPRO's settings, DSPy's.
const (
	DefaultCOPROBreadth         = 10
	DefaultCOPRODepth           = 3
	DefaultCOPROInitTemperature = 1.4
)

// The prompt model's signatures, DSPy's BasicGenerateInstruction and
// GenerateInstructionGivenAttempts word for word.
const (
	basicGenerateInstructionText = "You are an instruction optimizer for large language models. I will give you a ``signature`` of fields (inputs and outputs) in English. Your task is to propose an instruction that will lead a good language model to perform the task well. Don't be afraid to be creative."
	givenAttemptsText            = "You are an instruction optimizer for large language models. I will give some task instructions I've tried, along with their corresponding validation scores. The instructions are arranged in increasing order based on their scores, where higher scores indicate better quality.\n\nYour task is to propose a new instruction that will lead a good language model to perform the task even better. Don't be afraid to be creative."
	proposedInstructionDesc      = "The improved instructions for the language model"
	proposedPrefixDesc           = "The string at the end of the prompt, which will help the model start solving the task"
)

func proposalOutputs() []signature.Field {
	return []signature.Field{
		{Name: "proposed_instruction", Desc: proposedInstructionDesc},
		{Name: "proposed_prefix_for_output_field", Desc: proposedPrefixDesc},
	}
}

// BasicGenerateInstruction returns DSPy's signature that asks the prompt
// model for a better instruction given the initial one
// (basic_instruction -> proposed_instruction, proposed_prefix_for_output_field).
func BasicGenerateInstruction() *signature.Signature {
	sig, err := signature.New([]signature.Field{{Name: "basic_instruction", Desc: "The initial instructions before optimization"}},
		proposalOutputs(), basicGenerateInstructionText)
	if err != nil {
		panic("teleprompt: BasicGenerateInstruction: " + err.Error()) // fixed fields; cannot fail
	}
	return sig.WithName("BasicGenerateInstruction")
}

// GenerateInstructionGivenAttempts returns DSPy's signature that asks the
// prompt model for a better instruction given earlier attempts and their
// scores (attempted_instructions -> proposed_instruction,
// proposed_prefix_for_output_field).
func GenerateInstructionGivenAttempts() *signature.Signature {
	sig, err := signature.New([]signature.Field{{Name: "attempted_instructions"}}, proposalOutputs(), givenAttemptsText)
	if err != nil {
		panic("teleprompt: GenerateInstructionGivenAttempts: " + err.Error()) // fixed fields; cannot fail
	}
	return sig.WithName("GenerateInstructionGivenAttempts")
}

// COPRO is DSPy's COPRO: coordinate ascent over each predictor's
// instructions (and the prefix of its last output field). For every
// predictor the prompt model proposes Breadth−1 instructions from the
// current one (BasicGenerateInstruction, one call with n = Breadth−1 at
// InitTemperature), to which the original is added; then, Depth times,
// every predictor's candidates are scored on the training set — each the
// program with that predictor's instructions and prefix replaced, the
// other predictors holding their best so far — the predictor keeps its
// best, and (except after the last round) the prompt model proposes
// Breadth new ones from the attempts so far, sorted by score
// (GenerateInstructionGivenAttempts). With one predictor each round scores
// only the newest candidates; with several, every candidate of the
// predictor is scored again against the others' new instructions, as in
// DSPy. The best-scoring program is returned.
//
// Each evaluation is a trial of a Trials (published as an event and kept
// by the trace store), whose candidate id hashes every predictor's name,
// instruction and prefix as the candidate has them: candidates finished by
// an interrupted run (Resume) are not evaluated again, and a program
// proposed again within a run — the same proposal twice, or the same
// instructions reached through another predictor — is not either: its
// first score stands (DSPy evaluates it again). Candidates are scored one
// after another, each evaluation concurrently (Eval).
//
// The prompt model's calls are not resumed: a resumed run asks it again,
// so it proposes the same candidates only when the prompt model is
// deterministic or its answers are cached.
//
// A run reads the COPRO and never changes it, nor the student; separate
// runs may share one.
type COPRO struct {
	// Metric scores candidates; required.
	Metric metric.Metric
	// PromptModel proposes instructions; default the context's LM.
	PromptModel lm.LM
	// Breadth is how many candidates each proposal round makes; default
	// DefaultCOPROBreadth (10). It must be greater than 1: 1 or a negative
	// value is an error.
	Breadth int
	// Depth is how many rounds of scoring there are; default
	// DefaultCOPRODepth (3).
	Depth int
	// InitTemperature is the prompt model's temperature for every
	// proposal round; 0 means DefaultCOPROInitTemperature (1.4).
	InitTemperature float64
	// Eval configures each candidate's evaluation on the training set.
	Eval evaluate.Options
	// Resume holds candidates finished by an interrupted run, by id.
	Resume map[string]Finished
	// TrackStats records score statistics per predictor and depth in the
	// result (DSPy's results_best and results_latest).
	TrackStats bool
}

var _ Optimizer = (*COPRO)(nil)

// Name returns "COPRO".
func (*COPRO) Name() string { return "COPRO" }

// ErrBreadth is returned by COPRO for a Breadth of 1 or less.
var ErrBreadth = errors.New("teleprompt: copro: breadth must be greater than 1")

// InstructionCandidate is one evaluated instruction of one predictor.
type InstructionCandidate struct {
	// ID is the trial's candidate id.
	ID string
	// Predictor names the predictor whose instruction this is.
	Predictor   string
	Instruction string
	// Prefix is the prefix of the predictor's last output field.
	Prefix string
	// Depth is the round (from 0) in which it was scored.
	Depth int
	Score float64
	// Program is the whole program as scored.
	Program module.Program
}

// ScoreStats are statistics of scores, one entry per round (DSPy's
// {"depth", "max", "average", "min", "std"}; Std is the population
// standard deviation).
type ScoreStats struct {
	Depth                  []int
	Max, Average, Min, Std []float64
}

func (s *ScoreStats) add(depth int, scores []float64) {
	if len(scores) == 0 {
		return
	}
	lo, hi, sum := scores[0], scores[0], 0.0
	for _, x := range scores {
		lo, hi, sum = min(lo, x), max(hi, x), sum+x
	}
	mean := sum / float64(len(scores))
	var ss float64
	for _, x := range scores {
		ss += (x - mean) * (x - mean)
	}
	s.Depth = append(s.Depth, depth)
	s.Max = append(s.Max, hi)
	s.Average = append(s.Average, mean)
	s.Min = append(s.Min, lo)
	s.Std = append(s.Std, math.Sqrt(ss/float64(len(scores))))
}

// PredictorStats are one predictor's statistics (TrackStats).
type PredictorStats struct {
	// Best covers the (at most) 10 best scores of the predictor's
	// candidates so far, after each round.
	Best ScoreStats
	// Latest covers the scores of the round's newest candidates (the
	// predictor's own: DSPy pools those of every predictor scored so far
	// in the round).
	Latest ScoreStats
}

// COPROResult is what a COPRO run found.
type COPROResult struct {
	// Best is the best candidate (the first of Candidates).
	Best *InstructionCandidate
	// Candidates are every predictor's evaluated candidates, best first,
	// without repeats of an equal score (DSPy's candidate_programs).
	Candidates []*InstructionCandidate
	// Evaluations counts candidates evaluated by this run, Resumed those
	// taken from Resume, and Repeats candidates proposed again in this run
	// and not evaluated again. Their sum is DSPy's total_calls.
	Evaluations, Resumed, Repeats int
	// Stats are the statistics by predictor name, when TrackStats is set.
	Stats map[string]*PredictorStats
}

// TotalCalls is DSPy's total_calls: the evaluations a DSPy run would have
// made.
func (r *COPROResult) TotalCalls() int { return r.Evaluations + r.Resumed + r.Repeats }

// Compile returns the best program found.
func (o *COPRO) Compile(ctx context.Context, student module.Program, trainset []example.Example) (module.Program, error) {
	res, err := o.Optimize(ctx, student, trainset)
	if err != nil {
		return nil, err
	}
	return res.Best.Program, nil
}

// proposal is a candidate instruction and prefix for one predictor.
type proposal struct {
	instruction, prefix string
}

// predictorSearch is one predictor's state during a run.
type predictorSearch struct {
	name string
	// all holds every proposal so far, latest those of the last round.
	all, latest []proposal
	// evaluated holds the best evaluation of each proposal, in the order
	// first evaluated (a Python dict's order, which breaks ties).
	evaluated []*InstructionCandidate
	byKey     map[proposal]*InstructionCandidate
	stats     *PredictorStats
}

// Optimize runs COPRO and returns every candidate with its score.
func (o *COPRO) Optimize(ctx context.Context, student module.Program, trainset []example.Example) (*COPROResult, error) {
	breadth, depth, temp := o.Breadth, o.Depth, o.InitTemperature
	if breadth == 0 {
		breadth = DefaultCOPROBreadth
	}
	if depth <= 0 {
		depth = DefaultCOPRODepth
	}
	if temp == 0 {
		temp = DefaultCOPROInitTemperature
	}
	if breadth <= 1 {
		return nil, fmt.Errorf("%w (got %d)", ErrBreadth, breadth)
	}
	if o.Metric == nil {
		return nil, ErrNoMetric
	}
	if len(trainset) == 0 {
		return nil, errors.New("teleprompt: copro: the training set is empty")
	}
	if len(student.NamedPredictors()) == 0 {
		return nil, errors.New("teleprompt: copro: the student has no predictors")
	}
	cfg := map[string]any{"breadth": breadth, "depth": depth, "init_temperature": temp, "trainset": len(trainset),
		"metric": o.Metric.Name(), "track_stats": o.TrackStats}
	if o.PromptModel != nil {
		cfg["prompt_model"] = o.PromptModel.Model()
	}
	publishStart(ctx, o.Name(), cfg)
	res, err := o.run(ctx, student, trainset, breadth, depth, temp)
	var best *float64
	if res != nil {
		best = &res.Best.Score
	}
	publishEnd(ctx, o.Name(), best, err)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// coproRun is the state of one COPRO run; run walks it through its steps:
// seed every predictor's proposals, then for each round score every
// predictor's candidates and propose new ones, then collect the results.
type coproRun struct {
	o                *COPRO
	promptCtx        context.Context
	breadth, depth   int
	temp             float64
	base, current    module.Program
	trials           *Trials
	res              *COPROResult
	searches         []*predictorSearch
	seen             map[string]*Candidate // candidates evaluated in this run, by id
	total, completed int
}

func (o *COPRO) run(ctx context.Context, student module.Program, trainset []example.Example, breadth, depth int, temp float64) (*COPROResult, error) {
	r := &coproRun{o: o, promptCtx: ctx, breadth: breadth, depth: depth, temp: temp, base: student.Clone(),
		res: &COPROResult{}, seen: map[string]*Candidate{}}
	if o.PromptModel != nil {
		r.promptCtx = module.WithLM(ctx, o.PromptModel)
	}
	r.trials = &Trials{Optimizer: o.Name(), Metric: o.Metric, Valset: trainset, Eval: o.Eval, Resume: o.Resume}
	if o.TrackStats {
		r.res.Stats = map[string]*PredictorStats{}
	}
	if err := r.seed(); err != nil {
		return nil, err
	}
	r.current = r.base.Clone()
	r.total = expectedEvaluations(len(r.searches), breadth, depth)
	for d := 0; d < depth; d++ {
		for pi, s := range r.searches {
			if err := r.scorePredictor(ctx, d, pi, s); err != nil {
				return nil, err
			}
		}
		if d == depth-1 {
			break
		}
		if err := r.proposeNext(d); err != nil {
			return nil, err
		}
	}
	return r.result(), nil
}

// seed gives each predictor Breadth-1 proposals and its own instruction.
func (r *coproRun) seed() error {
	for _, np := range r.base.NamedPredictors() {
		sig := np.Predictor.Signature()
		props, err := r.o.propose(r.promptCtx, BasicGenerateInstruction(), module.Inputs{"basic_instruction": sig.Instructions()}, r.breadth-1, r.temp)
		if err != nil {
			return fmt.Errorf("teleprompt: copro: propose instructions for %s: %w", np.Name, err)
		}
		props = append(props, proposal{cleanProposal(sig.Instructions()), cleanProposal(lastField(sig).Prefix)})
		s := &predictorSearch{name: np.Name, all: props, latest: props, byKey: map[proposal]*InstructionCandidate{}}
		if r.o.TrackStats {
			s.stats = &PredictorStats{}
			r.res.Stats[np.Name] = s.stats
		}
		r.searches = append(r.searches, s)
	}
	return nil
}

// scorePredictor scores predictor pi's candidates in round d, then gives
// the predictor its best, so that the next predictors are scored against
// it.
func (r *coproRun) scorePredictor(ctx context.Context, d, pi int, s *predictorSearch) error {
	cands := s.latest
	if len(r.searches) > 1 {
		cands = s.all
	}
	var latest []float64
	for ci, c := range cands {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("teleprompt: copro: depth %d, predictor %s: %w", d+1, s.name, err)
		}
		id := instructionCandidateID(r.current, pi, c)
		cand, err := r.score(ctx, id, pi, c)
		if err != nil {
			return fmt.Errorf("teleprompt: copro: depth %d, predictor %s, candidate %d: %w", d+1, s.name, ci+1, err)
		}
		r.completed++
		progress(ctx, "copro", r.completed, max(r.total, r.completed))
		s.record(id, d, c, cand)
		if len(cands)-r.breadth <= ci {
			latest = append(latest, cand.Score)
		}
	}
	if s.stats != nil {
		s.stats.Latest.add(d, latest)
	}
	best := s.evaluated[0]
	for _, ic := range s.evaluated[1:] {
		if ic.Score > best.Score {
			best = ic
		}
	}
	setInstruction(r.current.NamedPredictors()[pi].Predictor, proposal{best.Instruction, best.Prefix})
	return nil
}

// score evaluates the candidate id, which gives predictor pi the proposal
// c, unless this run evaluated it already.
func (r *coproRun) score(ctx context.Context, id string, pi int, c proposal) (*Candidate, error) {
	if cand, ok := r.seen[id]; ok {
		r.res.Repeats++
		return cand, nil
	}
	cand, err := r.trials.Run(ctx, id, r.base, func(context.Context) (module.Program, error) {
		prog := r.current.Clone()
		setInstruction(prog.NamedPredictors()[pi].Predictor, c)
		return prog, nil
	})
	if err != nil {
		return nil, err
	}
	r.seen[id] = cand
	if cand.Resumed {
		r.res.Resumed++
	} else {
		r.res.Evaluations++
	}
	return cand, nil
}

// record keeps the best evaluation of proposal c, scored in round d.
func (s *predictorSearch) record(id string, d int, c proposal, cand *Candidate) {
	old, ok := s.byKey[c]
	if ok && !(cand.Score > old.Score) { // a NaN score never replaces one
		return
	}
	ic := &InstructionCandidate{ID: id, Predictor: s.name, Instruction: c.instruction, Prefix: c.prefix,
		Depth: d, Score: cand.Score, Program: cand.Program}
	if ok {
		*old = *ic
		return
	}
	s.byKey[c] = ic
	s.evaluated = append(s.evaluated, ic)
}

// proposeNext asks the prompt model, after round d, for Breadth new
// proposals per predictor from its attempts so far.
func (r *coproRun) proposeNext(d int) error {
	for _, s := range r.searches {
		ranked := s.ranked()
		if s.stats != nil {
			s.stats.Best.add(d, topScores(ranked))
		}
		props, err := r.o.propose(r.promptCtx, GenerateInstructionGivenAttempts(),
			module.Inputs{"attempted_instructions": attempts(ranked, r.breadth)}, r.breadth, r.temp)
		if err != nil {
			return fmt.Errorf("teleprompt: copro: depth %d: propose instructions for %s: %w", d+1, s.name, err)
		}
		s.latest = props
		s.all = append(s.all, props...)
	}
	return nil
}

// result collects every predictor's candidates, best first.
func (r *coproRun) result() *COPROResult {
	var all []*InstructionCandidate
	for _, s := range r.searches {
		if s.stats != nil {
			s.stats.Best.add(r.depth-1, topScores(s.ranked()))
		}
		all = append(all, s.evaluated...)
	}
	slices.SortStableFunc(all, func(a, b *InstructionCandidate) int { return cmp.Compare(b.Score, a.Score) })
	r.res.Candidates = dropDuplicates(all)
	r.res.Best = r.res.Candidates[0]
	return r.res
}

// expectedEvaluations is how many candidates a run scores when every
// proposal round returns all its completions.
func expectedEvaluations(predictors, breadth, depth int) int {
	if predictors == 1 {
		return breadth * depth
	}
	return predictors * breadth * depth * (depth + 1) / 2
}

// ranked returns the predictor's evaluated candidates, best first (ties in
// the order first evaluated).
func (s *predictorSearch) ranked() []*InstructionCandidate {
	r := slices.Clone(s.evaluated)
	slices.SortStableFunc(r, func(a, b *InstructionCandidate) int { return cmp.Compare(b.Score, a.Score) })
	return r
}

func topScores(ranked []*InstructionCandidate) []float64 {
	var out []float64
	for _, c := range ranked[:min(10, len(ranked))] {
		out = append(out, c.Score)
	}
	return out
}

// attempts lists the best (at most breadth) attempts for the prompt model,
// worst of them first, as DSPy writes them.
func attempts(ranked []*InstructionCandidate, breadth int) []string {
	n := min(len(ranked), breadth)
	out := make([]string, 0, 3*n)
	for i := n - 1; i >= 0; i-- {
		k := strconv.Itoa(n - i)
		out = append(out,
			"Instruction #"+k+": "+ranked[i].Instruction,
			"Prefix #"+k+": "+ranked[i].Prefix,
			"Resulting Score #"+k+": "+pyjson.FormatFloat(ranked[i].Score))
	}
	return out
}

// propose asks the prompt model for n proposals at temperature temp.
func (o *COPRO) propose(ctx context.Context, sig *signature.Signature, inputs module.Inputs, n int, temp float64) ([]proposal, error) {
	p := module.NewPredict(sig, module.WithConfig(lm.Params{N: lm.Int(n), Temperature: lm.Float(temp)}))
	pred, err := p.Forward(ctx, inputs)
	if err != nil {
		return nil, err
	}
	text := func(c map[string]any, key string) string {
		v, ok := c[key]
		if !ok || v == nil {
			return ""
		}
		if s, ok := v.(string); ok {
			return s
		}
		return pyjson.Str(v)
	}
	out := make([]proposal, 0, len(pred.Completions))
	for _, c := range pred.Completions {
		out = append(out, proposal{
			instruction: cleanProposal(text(c, "proposed_instruction")),
			prefix:      cleanProposal(text(c, "proposed_prefix_for_output_field")),
		})
	}
	return out, nil
}

// cleanProposal strips quotes, then white space, from both ends (DSPy's
// .strip('"').strip()).
func cleanProposal(s string) string {
	return strings.TrimFunc(strings.Trim(s, `"`), func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}

// lastField is the signature's last field (its last output), whose prefix
// COPRO tunes.
func lastField(sig *signature.Signature) signature.Field {
	return sig.Output(sig.NumOutputs() - 1)
}

// setInstruction gives p the proposal's instruction and last-field prefix.
func setInstruction(p *module.Predict, c proposal) {
	sig := p.Signature().WithInstructions(c.instruction)
	if updated, err := sig.WithField(lastField(sig).Name, func(f *signature.Field) { f.Prefix = c.prefix }); err == nil {
		sig = updated
	}
	p.SetSignature(sig)
}

// instructionCandidateID names the candidate that gives predictor pi of
// prog the proposal c: a hash of every predictor's name, instruction and
// last-field prefix in the candidate — the predictor's from c, the others'
// as they are now. COPRO changes nothing else, so equal ids are equal
// programs, whichever predictor's proposal made them.
func instructionCandidateID(prog module.Program, pi int, c proposal) string {
	var parts [][]byte
	for i, np := range prog.NamedPredictors() {
		instruction, prefix := c.instruction, c.prefix
		if i != pi {
			sig := np.Predictor.Signature()
			instruction, prefix = sig.Instructions(), lastField(sig).Prefix
		}
		parts = append(parts, []byte(np.Name), []byte(instruction), []byte(prefix))
	}
	return "copro-" + Fingerprint(parts...)
}

// dropDuplicates removes, among candidates of equal score (adjacent, as
// candidates are sorted by score), those whose program equals an earlier
// one's: the same instructions and last fields for every predictor
// (DSPy's _drop_duplicates).
func dropDuplicates(sorted []*InstructionCandidate) []*InstructionCandidate {
	var out, batch []*InstructionCandidate
	for i, c := range sorted {
		if i == 0 || c.Score != batch[0].Score {
			batch = []*InstructionCandidate{c}
			out = append(out, c)
			continue
		}
		if slices.ContainsFunc(batch, func(b *InstructionCandidate) bool { return samePrograms(b.Program, c.Program) }) {
			continue
		}
		batch = append(batch, c)
		out = append(out, c)
	}
	return out
}

func samePrograms(a, b module.Program) bool {
	pa, pb := a.NamedPredictors(), b.NamedPredictors()
	for i := range min(len(pa), len(pb)) {
		sa, sb := pa[i].Predictor.Signature(), pb[i].Predictor.Signature()
		if sa.Instructions() != sb.Instructions() {
			return false
		}
		fa, fb := lastField(sa), lastField(sb)
		if fa.Name != fb.Name || fa.Prefix != fb.Prefix || fa.Desc != fb.Desc || fa.Type.String() != fb.Type.String() {
			return false
		}
	}
	return true
}
