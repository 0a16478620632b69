package mipro

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/teleprompt"
	"github.com/dspex/dspex/plugins/sampler"
)

// entry is one study trial in Go's log, indexed by its number.
type entry struct {
	params    sampler.Params
	value     float64
	evaluated bool // value is set
	told      bool // the study holds it as complete
	inStudy   bool // the study holds it (asked, replayed or told)
}

// combo is a parameter combination's minibatch scores (DSPy's
// param_score_dict entry): the first program and params seen with it.
type combo struct {
	key     string
	scores  []float64
	program module.Program
	params  sampler.Params
	idx     map[string]int
}

type search struct {
	r      *run
	res    *Result
	study  sampler.StudyConfig
	names  []string // the space's parameter names, in order
	sizes  []int
	log    []entry
	combos []*combo
	byKey  map[string]*combo
	full   map[string]bool

	best      module.Program
	bestScore float64
	resume    map[int64]Trial
	// ops are the study's successful Ask, Tell and Replay calls in order:
	// with the continuous RNG a rebuild makes them again (sampler.Redrive).
	ops        []sampler.Op
	continuous bool

	// fused is the sampler when it is a FusedSampler: the changes in
	// pending then ride on the next ask (or on the last flush); else they
	// are made at once, one call each.
	fused   FusedSampler
	pending []change
	// replayLog: the study was created anew after a restart and is empty;
	// the next call replays the whole log first (RNGTrial, fused sampler).
	replayLog bool
}

// change is a change to the study that the search has decided on and not
// made yet.
type change struct {
	kind   changeKind
	number int64 // the trial's number in the log
}

type changeKind int

const (
	tellTrial  changeKind = iota // tell an evaluated trial
	addTrial                     // add a fully evaluated trial (complete)
	addRunning                   // add a resumed trial as running
)

func paramName(i int, what string) string { return strconv.Itoa(i) + "_predictor_" + what }

// space is DSPy's _get_param_distributions, in suggest order: per
// predictor, its instruction, then its demo set.
func (st *search) space() []sampler.Param {
	var out []sampler.Param
	for i, instr := range st.res.Instructions {
		st.names = append(st.names, paramName(i, "instruction"))
		st.sizes = append(st.sizes, len(instr))
		out = append(out, sampler.Indices(paramName(i, "instruction"), len(instr)))
		if st.res.DemoSets != nil {
			st.names = append(st.names, paramName(i, "demos"))
			st.sizes = append(st.sizes, len(st.res.DemoSets[i]))
			out = append(out, sampler.Indices(paramName(i, "demos"), len(st.res.DemoSets[i])))
		}
	}
	return out
}

// checkSpace refuses a space that cannot hold the search: one combination
// only, or (with minibatches) fewer combinations than full evaluations,
// each of which needs a combination not fully evaluated yet (DSPy fails
// mid-run with "No valid program found").
func (st *search) checkSpace() error {
	combos := 1
	for _, n := range st.sizes {
		combos *= n
		if combos > 1<<30 {
			break
		}
	}
	s := st.r.s
	need := 2
	if s.minibatch {
		need = max(need, (s.numTrials+s.fullEvalSteps-1)/s.fullEvalSteps)
	}
	if combos < need {
		return fmt.Errorf("%w: %d combinations of instructions and demo sets (sizes %v), %d trials need at least %d",
			ErrSpace, combos, st.sizes, s.numTrials, need)
	}
	return nil
}

// indices reads and checks a trial's parameters.
func (st *search) indices(t sampler.Trial) (map[string]int, error) {
	out := make(map[string]int, len(st.names))
	for i, name := range st.names {
		v, err := t.Params.Index(name)
		if err != nil {
			return nil, fmt.Errorf("%w: trial %d: %v", ErrSampler, t.Number, err)
		}
		if v < 0 || v >= st.sizes[i] {
			return nil, fmt.Errorf("%w: trial %d: %s = %d, outside 0..%d", ErrSampler, t.Number, name, v, st.sizes[i]-1)
		}
		out[name] = v
	}
	return out, nil
}

// candidate builds the program a trial's indices choose.
func (st *search) candidate(idx map[string]int) module.Program {
	prog := st.r.program.Clone()
	for i, np := range prog.NamedPredictors() {
		np.Predictor.SetSignature(np.Predictor.Signature().WithInstructions(st.res.Instructions[i][idx[paramName(i, "instruction")]]))
		if st.res.DemoSets != nil {
			np.Predictor.SetDemos(st.res.DemoSets[i][idx[paramName(i, "demos")]])
		}
	}
	return prog
}

// comboKey is DSPy's categorical_key: "Predictor i: Instruction x,
// Predictor i: Few-Shot Set y, ...".
func (st *search) comboKey(idx map[string]int) string {
	var parts []string
	for i := range st.res.Instructions {
		parts = append(parts, fmt.Sprintf("Predictor %d: Instruction %d", i, idx[paramName(i, "instruction")]))
		if st.res.DemoSets != nil {
			parts = append(parts, fmt.Sprintf("Predictor %d: Few-Shot Set %d", i, idx[paramName(i, "demos")]))
		}
	}
	return strings.Join(parts, ",")
}

func toParams(idx map[string]int) sampler.Params {
	p := make(sampler.Params, len(idx))
	for k, v := range idx {
		p[k] = sampler.ChoiceValue(strconv.Itoa(v))
	}
	return p
}

func (r *run) search(ctx context.Context, res *Result) error {
	s := r.s
	st := &search{r: r, res: res, byKey: map[string]*combo{}, full: map[string]bool{}, resume: map[int64]Trial{}}
	id := r.o.cfg.StudyID
	if id == "" {
		id = fmt.Sprintf("mipro-%d", s.seed)
	}
	st.study = sampler.StudyConfig{ID: id, Space: st.space(), Seed: s.seed, Sampler: r.o.cfg.SamplerName, Options: r.o.cfg.SamplerOptions}
	st.continuous = st.study.Continuous()
	st.fused, _ = r.o.cfg.Sampler.(FusedSampler)
	if err := st.checkSpace(); err != nil {
		return err
	}

	// The unmodified program, fully evaluated, is the baseline trial.
	baseIdx := map[string]int{}
	for _, n := range st.names {
		baseIdx[n] = 0
	}
	for _, t := range r.o.cfg.Resume {
		if prev, dup := st.resume[t.Number]; dup && !sameTrial(prev, t) {
			return fmt.Errorf("%w: trial %d is logged twice, differently", ErrResume, t.Number)
		}
		st.resume[t.Number] = t
	}
	base := r.program.Clone()
	baseTrial, resumed, err := st.resumed(0, Baseline, baseIdx)
	if err != nil {
		return err
	}
	baseScore, baseErr := baseTrial.Score, baseTrial.Error
	if !resumed {
		if baseScore, baseErr, err = st.evaluate(ctx, base, r.val); err != nil {
			return err
		}
	}
	st.best, st.bestScore = base, baseScore
	if err := st.call(ctx, "create study", func() error {
		_, err := r.o.cfg.Sampler.CreateStudy(ctx, st.study)
		return err
	}); err != nil {
		return err
	}
	if err := st.addTrial(ctx, baseIdx, baseScore); err != nil {
		return err
	}
	st.record(ctx, Trial{Number: 0, Kind: Baseline, Params: baseIdx, Score: baseScore, BatchSize: len(r.val), Error: baseErr, Resumed: resumed}, base, true)

	total := s.numTrials
	for done := 0; done < s.numTrials; {
		k := min(s.inFlight, s.numTrials-done)
		if s.minibatch {
			k = min(k, s.fullEvalSteps-done%s.fullEvalSteps)
		}
		if err := st.batch(ctx, k); err != nil {
			return err
		}
		done += k
		progress(ctx, "mipro: trials", done, total)
		if s.minibatch && (done%s.fullEvalSteps == 0 || done == s.numTrials) {
			if err := st.fullEval(ctx); err != nil {
				return err
			}
		}
	}
	if err := st.flush(ctx); err != nil {
		return err
	}
	for n := range st.resume {
		if n >= int64(len(st.log)) {
			return fmt.Errorf("%w: trial %d is logged, this run ended with %d trials", ErrResume, n, len(st.log))
		}
	}
	res.Program, res.Score = st.best, st.bestScore
	return nil
}

type pending struct {
	number int64
	idx    map[string]int
	prog   module.Program
	set    []example.Example
	score  float64
	err    string
	// resumed: taken from Config.Resume, not evaluated again.
	resumed bool
}

// resumed returns the logged trial of that number when Config.Resume has
// one, checking that it is the trial the run has reached.
func (st *search) resumed(number int64, kind TrialKind, idx map[string]int) (Trial, bool, error) {
	t, ok := st.resume[number]
	if !ok {
		return Trial{}, false, nil
	}
	if t.Kind != kind {
		return Trial{}, false, fmt.Errorf("%w: trial %d is logged as %s, the run reached a %s trial", ErrResume, number, t.Kind, kind)
	}
	if idx != nil && st.comboKey(t.Params) != st.comboKey(idx) {
		return Trial{}, false, fmt.Errorf("%w: trial %d is logged with %v, the run chose %v", ErrResume, number, t.Params, idx)
	}
	if _, err := st.indices(sampler.Trial{Number: number, Params: toParams(t.Params)}); err != nil {
		return Trial{}, false, fmt.Errorf("%w: %v", ErrResume, err)
	}
	return t, true, nil
}

// batch asks k trials, evaluates them concurrently, and tells them in
// trial order.
func (st *search) batch(ctx context.Context, k int) error {
	r := st.r
	batch := make([]*pending, 0, k)
	for range k {
		number := int64(len(st.log))
		logged, resumed, err := st.resumed(number, Sampled, nil)
		if err != nil {
			return err
		}
		var idx map[string]int
		if resumed && !st.continuous {
			// The study gets the logged trial as asked, told below.
			idx = logged.Params
			st.log = append(st.log, entry{params: toParams(idx)})
			if err := st.change(ctx, addRunning, number); err != nil {
				return err
			}
		} else {
			t, err := st.ask(ctx)
			if err != nil {
				return err
			}
			if t.Number != number {
				return fmt.Errorf("%w: asked trial %d, the log holds %d trials", ErrSampler, t.Number, len(st.log))
			}
			if idx, err = st.indices(t); err != nil {
				return err
			}
			if resumed && st.comboKey(idx) != st.comboKey(logged.Params) {
				// The continuous RNG asks the logged trials again, so that
				// the sampler draws as the interrupted run did.
				return fmt.Errorf("%w: trial %d is logged with %v, the sampler asked %v", ErrResume, number, logged.Params, idx)
			}
			st.log = append(st.log, entry{params: toParams(idx), inStudy: true})
		}
		p := &pending{number: number, idx: idx, prog: st.candidate(idx), set: r.val, resumed: resumed, score: logged.Score, err: logged.Error}
		if r.s.minibatch && r.s.minibatchSize < len(r.val) {
			pick, err := r.rng.Sample(len(r.val), r.s.minibatchSize)
			if err != nil {
				return fmt.Errorf("mipro: draw a minibatch: %w", err)
			}
			p.set = make([]example.Example, len(pick))
			for i, j := range pick {
				p.set[i] = r.val[j]
			}
		}
		batch = append(batch, p)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(batch))
	for i, p := range batch {
		if p.resumed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.score, p.err, errs[i] = st.evaluate(ctx, p.prog, p.set)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, p := range batch {
		e := &st.log[p.number]
		e.value, e.evaluated = p.score, true
		mini := len(p.set) < len(r.val)
		newBest := false
		if !r.s.minibatch && p.score > st.bestScore {
			st.best, st.bestScore, newBest = p.prog.Clone(), p.score, true
		}
		st.record(ctx, Trial{Number: p.number, Kind: Sampled, Params: p.idx, Score: p.score, Minibatch: mini, BatchSize: len(p.set), Error: p.err, Resumed: p.resumed}, p.prog, newBest)
		if r.s.minibatch {
			key := st.comboKey(p.idx)
			c, ok := st.byKey[key]
			if !ok {
				c = &combo{key: key, program: p.prog, params: toParams(p.idx), idx: p.idx}
				st.byKey[key] = c
				st.combos = append(st.combos, c)
			}
			c.scores = append(c.scores, p.score)
		}
		if err := st.change(ctx, tellTrial, p.number); err != nil {
			return err
		}
	}
	return nil
}

// fullEval is DSPy's _perform_full_evaluation: the combination with the
// highest mean minibatch score not yet fully evaluated is evaluated on the
// whole validation set and added to the study as a trial. When every
// combination was (DSPy raises), there is nothing to do.
func (st *search) fullEval(ctx context.Context) error {
	type mean struct {
		c *combo
		m float64
	}
	var means []mean
	for _, c := range st.combos {
		sum := 0.0
		for _, s := range c.scores {
			sum += s
		}
		means = append(means, mean{c, sum / float64(len(c.scores))})
	}
	slices.SortStableFunc(means, func(a, b mean) int {
		switch {
		case a.m > b.m:
			return -1
		case a.m < b.m:
			return 1
		}
		return 0
	})
	var pick *combo
	for _, m := range means {
		if !st.full[m.c.key] {
			pick = m.c
			break
		}
	}
	if pick == nil {
		return nil
	}
	number := int64(len(st.log))
	logged, resumed, err := st.resumed(number, FullEval, pick.idx)
	if err != nil {
		return err
	}
	score, evalErr := logged.Score, logged.Error
	if !resumed {
		if score, evalErr, err = st.evaluate(ctx, pick.program, st.r.val); err != nil {
			return err
		}
	}
	if err := st.addTrial(ctx, pick.idx, score); err != nil {
		return err
	}
	st.full[pick.key] = true
	newBest := score > st.bestScore
	if newBest {
		st.best, st.bestScore = pick.program.Clone(), score
	}
	st.record(ctx, Trial{Number: number, Kind: FullEval, Params: pick.idx, Score: score, BatchSize: len(st.r.val), Error: evalErr, Resumed: resumed}, pick.program, newBest)
	return nil
}

// evaluate scores prog on set. A failed evaluation scores 0, as DSPy's
// eval_candidate_program; only a cancelled context is an error.
func (st *search) evaluate(ctx context.Context, prog module.Program, set []example.Example) (float64, string, error) {
	res, err := evaluate.Run(ctx, prog, set, st.r.o.cfg.Metric, evaluate.Options{
		Concurrency: st.r.s.concurrency, MaxErrors: st.r.s.maxErrors, Label: "mipro eval",
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", ctx.Err()
		}
		return 0, err.Error(), nil
	}
	return res.Score, "", nil
}

// addTrial adds a fully evaluated trial to the study (Optuna's add_trial)
// and to the log.
func (st *search) addTrial(ctx context.Context, idx map[string]int, score float64) error {
	number := int64(len(st.log))
	st.log = append(st.log, entry{params: toParams(idx), value: score, evaluated: true})
	return st.change(ctx, addTrial, number)
}

// change queues a change to the study: with a fused sampler it rides on
// the next call, else it is made now.
func (st *search) change(ctx context.Context, kind changeKind, number int64) error {
	st.pending = append(st.pending, change{kind, number})
	if st.fused != nil {
		return nil
	}
	return st.flush(ctx)
}

// before returns the pending changes still to make, as the calls that make
// them, and marks them made in the log when called with how many were.
func (st *search) before() ([]sampler.Op, func(n int)) {
	if st.replayLog {
		// The whole log: evaluated trials complete, the others running.
		history := make([]sampler.PastTrial, len(st.log))
		for i, e := range st.log {
			history[i] = sampler.PastTrial{Params: e.params, Value: e.value, State: sampler.Complete}
			if !e.evaluated {
				history[i].State = sampler.Running
			}
		}
		return []sampler.Op{{Kind: sampler.OpReplay, Trials: history}}, func(n int) {
			if n == 0 {
				return
			}
			for i := range st.log {
				st.log[i].inStudy = true
				st.log[i].told = st.log[i].evaluated
			}
			st.replayLog, st.pending = false, nil
		}
	}
	var ops []sampler.Op
	var changes []change
	for _, c := range st.pending {
		e := st.log[c.number]
		switch c.kind {
		case tellTrial:
			if e.told {
				continue
			}
			ops = append(ops, sampler.Op{Kind: sampler.OpTell, Number: c.number, Value: e.value, State: sampler.Complete})
		case addTrial:
			if e.told { // a rebuild replayed it
				continue
			}
			ops = append(ops, sampler.Op{Kind: sampler.OpReplay, Trials: []sampler.PastTrial{{Params: e.params, Value: e.value}}})
		case addRunning:
			if e.inStudy {
				continue
			}
			ops = append(ops, sampler.Op{Kind: sampler.OpReplay, Trials: []sampler.PastTrial{{Params: e.params, State: sampler.Running}}})
		}
		changes = append(changes, c)
	}
	return ops, func(n int) {
		for i, c := range changes[:n] {
			e := &st.log[c.number]
			switch c.kind {
			case tellTrial:
				e.told = true
			case addTrial:
				e.told, e.inStudy = true, true
			case addRunning:
				e.inStudy = true
			}
			st.ops = append(st.ops, ops[i])
		}
		if n == len(ops) {
			st.pending = nil
		}
	}
}

// applied is how many of the changes a failed call carried were made.
func applied(err error) int {
	var e *sampler.Error
	if errors.As(err, &e) {
		return e.Applied
	}
	return 0
}

// ask makes the pending changes and asks the next trial: one round trip
// with a fused sampler.
func (st *search) ask(ctx context.Context) (sampler.Trial, error) {
	var t sampler.Trial
	err := st.call(ctx, "ask", func() error {
		ops, made := st.before()
		var err error
		if st.fused != nil {
			t, err = st.fused.AskAfter(ctx, st.study.ID, ops)
			if err != nil {
				made(applied(err))
				return err
			}
			made(len(ops))
		} else {
			if err := st.makeEach(ctx, ops, made); err != nil {
				return err
			}
			made(len(ops))
			if t, err = st.r.o.cfg.Sampler.Ask(ctx, st.study.ID); err != nil {
				return err
			}
		}
		st.ops = append(st.ops, sampler.Op{Kind: sampler.OpAsk, Number: t.Number, Params: t.Params})
		return nil
	})
	return t, err
}

// flush makes the pending changes: with a fused sampler in one round trip
// (a Replay that carries them), else one call each.
func (st *search) flush(ctx context.Context) error {
	if len(st.pending) == 0 && !st.replayLog {
		return nil
	}
	return st.call(ctx, "flush", func() error {
		ops, made := st.before()
		if len(ops) == 0 {
			made(0)
			return nil
		}
		want := int64(len(st.log))
		if st.fused != nil {
			// The last change, when it is a replay, is the call's own.
			carried, trials := ops, []sampler.PastTrial(nil)
			if last := ops[len(ops)-1]; last.Kind == sampler.OpReplay {
				carried, trials = ops[:len(ops)-1], last.Trials
			}
			n, err := st.fused.ReplayAfter(ctx, st.study.ID, carried, trials)
			if err != nil {
				made(min(applied(err), len(carried)))
				return err
			}
			made(len(ops))
			if n != want {
				return fmt.Errorf("%w: the study holds %d trials, the log %d", ErrSampler, n, want)
			}
			return nil
		}
		if err := st.makeEach(ctx, ops, made); err != nil {
			return err
		}
		made(len(ops))
		return nil
	})
}

// makeEach makes changes one call each (a plain Sampler), marking those
// made when one fails (the caller marks them all when none does). A replay
// must leave the study with at most the log's trials, and the last one
// with exactly those.
func (st *search) makeEach(ctx context.Context, ops []sampler.Op, made func(int)) error {
	want := int64(len(st.log))
	for i, op := range ops {
		if op.Kind == sampler.OpTell {
			if err := st.r.o.cfg.Sampler.Tell(ctx, st.study.ID, op.Number, op.Value, op.State); err != nil {
				made(i)
				return err
			}
			continue
		}
		n, err := st.r.o.cfg.Sampler.Replay(ctx, st.study.ID, op.Trials)
		if err != nil {
			made(i)
			return err
		}
		if n > want || (n != want && i == len(ops)-1) {
			made(i + 1)
			return fmt.Errorf("%w: the study holds %d trials after a replay, the log %d", ErrSampler, n, want)
		}
	}
	return nil
}

// rebuild recreates the study from the log: evaluated trials complete,
// the others running (told later under their numbers). With the
// continuous RNG it makes the study's calls again instead (sampler.Redrive),
// so that the sampler's random generator is where it was. With a fused
// sampler and the trial RNG it creates the study, and the next call
// replays the log before its own changes.
func (st *search) rebuild(ctx context.Context) error {
	if st.continuous {
		if err := sampler.Redrive(ctx, st.r.o.cfg.Sampler, st.study, st.ops); err != nil {
			return err
		}
		st.res.Rebuilds++
		progress(ctx, "mipro: sampler study rebuilt", len(st.log), len(st.log))
		return nil
	}
	if st.fused != nil {
		if _, err := st.fused.CreateStudy(ctx, st.study); err != nil {
			return err
		}
		st.replayLog = true
		st.res.Rebuilds++
		progress(ctx, "mipro: sampler study rebuilt", len(st.log), len(st.log))
		return nil
	}
	history := make([]sampler.PastTrial, len(st.log))
	for i, e := range st.log {
		history[i] = sampler.PastTrial{Params: e.params, Value: e.value, State: sampler.Complete}
		if !e.evaluated {
			history[i].State = sampler.Running
		}
	}
	if err := st.r.o.cfg.Sampler.Rebuild(ctx, st.study, history); err != nil {
		return err
	}
	for i := range st.log {
		st.log[i].inStudy = true
		if st.log[i].evaluated {
			st.log[i].told = true
		}
	}
	st.res.Rebuilds++
	progress(ctx, "mipro: sampler study rebuilt", len(history), len(history))
	return nil
}

// transient reports a sampler error that a plugin restart ends.
func transient(err error) bool {
	return errors.Is(err, bridge.ErrPluginDown) || errors.Is(err, bridge.ErrPluginExited) ||
		errors.Is(err, bridge.ErrUnhealthy) || status.Code(err) == codes.Unavailable
}

// call runs a sampler operation; while the plugin restarts it waits and
// tries again (for at most SamplerRetry), and when the study is gone (a
// restarted plugin) it rebuilds the study from the log first.
func (st *search) call(ctx context.Context, op string, f func() error) error {
	deadline := time.Now().Add(st.r.s.samplerRetry)
	backoff := 20 * time.Millisecond
	rebuilds := 0
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, sampler.ErrNotFound) && op != "create study" && rebuilds < 3:
			rebuilds++
			rerr := st.rebuild(ctx)
			if rerr == nil {
				continue
			}
			if !transient(rerr) {
				return fmt.Errorf("mipro: rebuild the study after %s failed: %w", op, rerr)
			}
			err = rerr
		case transient(err):
		default:
			return fmt.Errorf("mipro: sampler %s: %w", op, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mipro: sampler %s: the plugin did not come back within %v: %w", op, st.r.s.samplerRetry, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// record adds a trial to the result and publishes it.
func (st *search) record(ctx context.Context, t Trial, prog module.Program, newBest bool) {
	st.res.Trials = append(st.res.Trials, t)
	if !event.Enabled(ctx, event.OptimizerTrial) && !event.Enabled(ctx, event.OptimizerNewBest) {
		return
	}
	rec := teleprompt.CandidateRecord(fmt.Sprintf("trial-%d", t.Number), prog, t.Resumed)
	rec["kind"] = string(t.Kind)
	rec["batch_size"] = t.BatchSize
	params := map[string]any{}
	for k, v := range t.Params {
		params[k] = v
	}
	rec["params"] = params
	if t.Error != "" {
		rec["error"] = t.Error
	}
	score, best := t.Score, st.bestScore
	info := &event.OptimizerTrialInfo{Optimizer: Name, Trial: int(t.Number), Candidate: rec, Score: &score, BestScore: &best, Minibatch: t.Minibatch}
	publish(ctx, event.OptimizerTrial, info)
	if newBest {
		publish(ctx, event.OptimizerNewBest, info)
	}
}

func sameTrial(a, b Trial) bool {
	a.Resumed, b.Resumed = false, false
	if len(a.Params) != len(b.Params) {
		return false
	}
	for k, v := range a.Params {
		if w, ok := b.Params[k]; !ok || w != v {
			return false
		}
	}
	a.Params, b.Params = nil, nil
	return a.Number == b.Number && a.Kind == b.Kind && a.Score == b.Score && a.Minibatch == b.Minibatch && a.BatchSize == b.BatchSize && a.Error == b.Error
}

// WithSamplerRNG sets the sampler plugin's RNG rule (Config.SamplerOptions
// "rng"): sampler.RNGTrial, the plugin's default, or sampler.RNGContinuous,
// which asks DSPy's own trial sequence for the same seed and scores
// (TestDSPyMIPROParity). Both survive a plugin restart exactly: a trial
// study is rebuilt from the trial log, a continuous one by making its
// calls again (sampler.Redrive).
func WithSamplerRNG(rule string) Option {
	return func(c *Config) {
		opts := make(map[string]string, len(c.SamplerOptions)+1)
		maps.Copy(opts, c.SamplerOptions)
		opts["rng"] = rule
		c.SamplerOptions = opts
	}
}
