package finetune

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
)

// Name is the optimizer's name in events, as DSPy spells it.
const Name = "BootstrapFinetune"

// Errors for errors.Is, beside ErrNoData and the client's.
var (
	// ErrConfig: the settings or the program cannot be used.
	ErrConfig = errors.New("finetune: invalid configuration")
	// ErrJob: a job ended without a model (failed or cancelled).
	ErrJob = errors.New("finetune: job did not succeed")
)

// Trainer is what the optimizer needs from the plugin; *Client implements
// it.
type Trainer interface {
	StartJob(ctx context.Context, r JobRequest) (Job, error)
	GetJob(ctx context.Context, b Backend, id string) (Job, error)
	CancelJob(ctx context.Context, b Backend, id string) (Job, error)
	WatchJob(ctx context.Context, b Backend, id string, fn func(JobEvent) error) (JobEvent, error)
}

var _ Trainer = (*Client)(nil)

// Config configures BootstrapFinetune. Its zero value, with a Metric and a
// Trainer, is DSPy's default: multitask (one job per LM), demos kept, the
// openai backend.
type Config struct {
	// Metric scores the teacher's runs; a trace passes when its score is
	// not 0 (DSPy's truthiness). Required.
	Metric metric.Metric
	// Trainer runs the jobs (Open). Required.
	Trainer Trainer
	// Backend is the trainer's backend and options.
	Backend Backend
	// BaseModel is the model to fine-tune; default each job's LM's model.
	BaseModel string
	// Hyperparameters are passed to the backend (DSPy's train_kwargs).
	Hyperparameters map[string]string
	// PerPredictor starts one job per predictor, on that predictor's steps
	// alone (DSPy's multitask=False); by default one job per LM trains on
	// every step of every passing trace.
	PerPredictor bool
	// ExcludeDemos formats the training data without the predictors'
	// demos and leaves the tuned student without demos (exclude_demos).
	ExcludeDemos bool
	// Teacher runs the training set; default the student.
	Teacher module.Program
	// Concurrency bounds the teacher runs at once; default 16.
	Concurrency int
	// RunID goes into each job's idempotency key: a rerun of the same run
	// (--resume) asks for the same jobs, a new run for new ones.
	RunID string
	// Resume are job records of an interrupted run of the same
	// optimization (JobsFromEvents): a job whose idempotency key is among
	// them is followed by its id, never started again.
	Resume []JobRecord
	// PluginRetry bounds how long a call waits for a restarting plugin;
	// default 2 minutes.
	PluginRetry time.Duration
}

// Optimizer runs BootstrapFinetune. A run reads the Optimizer and never
// changes it.
type Optimizer struct{ cfg Config }

// NewOptimizer returns an optimizer with cfg's settings.
func NewOptimizer(cfg Config) *Optimizer { return &Optimizer{cfg: cfg} }

// Result is a finished fine-tuning.
type Result struct {
	// Program is the student with each predictor on its fine-tuned model.
	Program module.Program
	// Traces are the teacher's runs, in training-set order.
	Traces []Trace
	// Jobs are the jobs, in the order of the predictors they serve.
	Jobs []JobRecord
	// Data is each job's training file, by job key.
	Data map[string][]byte
	// Resumed reports a run that followed the jobs of Config.Resume
	// without bootstrapping again (Traces and Data are then empty).
	Resumed bool
}

// Passed counts the traces that passed the metric.
func (r *Result) Passed() int {
	n := 0
	for _, t := range r.Traces {
		if t.Passed() {
			n++
		}
	}
	return n
}

// job is one planned job.
type job struct {
	rec   JobRecord
	base  lm.LM
	jsonl []byte
}

// Compile fine-tunes a copy of student (never changed): it runs the
// teacher over trainset, formats the passing traces' steps into training
// files, runs one job per LM (or per predictor), and returns the student
// with its predictors on the new models. The context's LM is the LM of
// every predictor without its own. Cancelling ctx cancels the running
// jobs.
func (o *Optimizer) Compile(ctx context.Context, student module.Program, trainset []example.Example) (*Result, error) {
	c := o.cfg
	if c.Metric == nil {
		return nil, fmt.Errorf("%w: a metric is required", ErrConfig)
	}
	if c.Trainer == nil {
		return nil, fmt.Errorf("%w: a trainer is required (finetune.Open)", ErrConfig)
	}
	if len(trainset) == 0 {
		return nil, fmt.Errorf("%w: the training set is empty", ErrConfig)
	}
	student = student.Clone()
	preds := student.NamedPredictors()
	if len(preds) == 0 {
		return nil, fmt.Errorf("%w: the program has no predictors", ErrConfig)
	}
	teacher := c.Teacher
	if teacher == nil {
		teacher = student
	}
	teacher = teacher.Clone()
	if err := sameStructure(student, teacher); err != nil {
		return nil, err
	}
	publish(ctx, event.OptimizerStart, &event.OptimizerInfo{Optimizer: Name, Config: map[string]any{
		"metric": c.Metric.Name(), "multitask": !c.PerPredictor, "exclude_demos": c.ExcludeDemos,
		"backend": backendName(c.Backend), "base_model": c.BaseModel, "trainset": len(trainset),
	}})
	res, err := o.compile(ctx, student, teacher, trainset)
	end := &event.OptimizerInfo{Optimizer: Name}
	if err != nil {
		end.Error = err.Error()
	}
	publish(ctx, event.OptimizerEnd, end)
	return res, err
}

func (o *Optimizer) compile(ctx context.Context, student, teacher module.Program, trainset []example.Example) (*Result, error) {
	c := o.cfg
	jobs, err := o.group(ctx, student)
	if err != nil {
		return nil, err
	}
	res := &Result{Data: map[string][]byte{}}
	if o.resumeAll(jobs) {
		// Every job was started by the interrupted run: follow them; the
		// data they train on need not be made again.
		res.Resumed = true
	} else {
		traces, err := Bootstrap(ctx, teacher, trainset, c.Metric, c.Concurrency)
		if err != nil {
			return nil, err
		}
		res.Traces = traces
		if res.Passed() == 0 {
			return res, fmt.Errorf("%w: none of the teacher's %d runs passed the metric %s (%s); no job was started",
				ErrNoData, len(traces), c.Metric.Name(), failures(traces))
		}
		if err := o.makeData(jobs, traces); err != nil {
			return res, err
		}
		for _, j := range jobs {
			res.Data[j.rec.Key] = j.jsonl
		}
	}
	// Every job's data is made before any job starts: a job whose data is
	// empty starts none.
	models := make([]string, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			models[i], errs[i] = o.run(ctx, j)
		}()
	}
	wg.Wait()
	for _, j := range jobs {
		res.Jobs = append(res.Jobs, j.rec)
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	byPred := map[string]int{}
	for i, j := range jobs {
		for _, name := range j.rec.Predictors {
			byPred[name] = i
		}
	}
	for _, np := range student.NamedPredictors() {
		i := byPred[np.Name]
		np.Predictor.SetLM(WithModel(jobs[i].base, models[i]))
		if c.ExcludeDemos {
			np.Predictor.SetDemos(nil)
		}
	}
	res.Program = student
	return res, nil
}

// resumeAll reports whether Config.Resume holds a started job for every
// job (by its key), and if so takes their records.
func (o *Optimizer) resumeAll(jobs []*job) bool {
	recs := make([]JobRecord, len(jobs))
	for i, j := range jobs {
		r, ok := resumed(o.cfg.Resume, j.rec)
		if !ok {
			return false
		}
		recs[i] = r
	}
	for i, j := range jobs {
		r := recs[i]
		j.rec.JobID, j.rec.State, j.rec.FineTunedModel = r.JobID, r.State, r.FineTunedModel
		j.rec.IdempotencyKey, j.rec.DataHash, j.rec.Examples = r.IdempotencyKey, r.DataHash, r.Examples
	}
	return true
}

// group groups the student's predictors into jobs.
func (o *Optimizer) group(ctx context.Context, student module.Program) ([]*job, error) {
	c := o.cfg
	ctxLM := module.SettingsFrom(ctx).LM
	var jobs []*job
	byKey := map[string]*job{}
	var lms []lm.LM
	for _, np := range student.NamedPredictors() {
		base := np.Predictor.LM()
		if base == nil {
			base = ctxLM
		}
		if base == nil {
			return nil, fmt.Errorf("%w: predictor %q has no LM (give it one, or run with the context's LM)", ErrConfig, np.Name)
		}
		key := "predictor:" + np.Name
		if !c.PerPredictor {
			n := 0
			for i, l := range lms {
				if l == base {
					n = i + 1
				}
			}
			if n == 0 {
				lms = append(lms, base)
				n = len(lms)
			}
			key = "lm:" + base.Model()
			if n > 1 {
				key += fmt.Sprintf("#%d", n)
			}
		}
		if j, ok := byKey[key]; ok {
			j.rec.Predictors = append(j.rec.Predictors, np.Name)
			continue
		}
		baseModel := c.BaseModel
		if baseModel == "" {
			baseModel = base.Model()
		}
		j := &job{base: base, rec: JobRecord{Key: key, Backend: backendName(c.Backend), Options: PublicOptions(c.Backend.Options),
			BaseModel: baseModel, Predictors: []string{np.Name}}}
		byKey[key] = j
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// makeData makes each job's training file from the traces.
func (o *Optimizer) makeData(jobs []*job, traces []Trace) error {
	c := o.cfg
	for _, j := range jobs {
		var keep func(Step) bool
		if c.PerPredictor {
			name := j.rec.Predictors[0]
			keep = func(s Step) bool { return s.Name == name }
		}
		lines, err := TrainingData(traces, keep, c.ExcludeDemos)
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			return fmt.Errorf("%w: the passing traces have no calls of %s; no job was started", ErrNoData, strings.Join(j.rec.Predictors, ", "))
		}
		j.jsonl = JSONL(lines)
		j.rec.DataHash = DataHash(j.jsonl)
		j.rec.Examples = len(lines)
		j.rec.IdempotencyKey = IdempotencyKey(c.RunID, j.rec)
	}
	return nil
}

// IdempotencyKey derives a job's key from the run id and what the job
// trains: its key in the optimization, base model, backend and data.
func IdempotencyKey(runID string, r JobRecord) string {
	h := sha256.Sum256([]byte(strings.Join([]string{runID, r.Key, r.BaseModel, r.Backend, r.DataHash}, "\x00")))
	return "dspex-" + hex.EncodeToString(h[:16])
}

func backendName(b Backend) string {
	if b.Name == "" {
		return BackendOpenAI
	}
	return b.Name
}

func sameStructure(student, teacher module.Program) error {
	s, t := student.NamedPredictors(), teacher.NamedPredictors()
	if len(s) != len(t) {
		return fmt.Errorf("%w: the teacher has %d predictors, the student %d", ErrConfig, len(t), len(s))
	}
	for i := range s {
		if s[i].Name != t[i].Name {
			return fmt.Errorf("%w: predictor %d is %q in the student, %q in the teacher", ErrConfig, i, s[i].Name, t[i].Name)
		}
	}
	return nil
}

func failures(traces []Trace) string {
	errs, zero := 0, 0
	var last error
	for _, t := range traces {
		if t.Err != nil {
			errs++
			last = t.Err
		} else {
			zero++
		}
	}
	s := fmt.Sprintf("%d scored 0, %d failed", zero, errs)
	if last != nil {
		s += fmt.Sprintf("; last failure: %v", last)
	}
	return s
}

// Bootstrap runs teacher on every example of trainset, concurrency at a
// time (default 16), recording each run's predictor calls and scoring it
// with m (DSPy's bootstrap_trace_data). A run that fails is kept as a
// trace with its error. Only the context's end stops it.
func Bootstrap(ctx context.Context, teacher module.Program, trainset []example.Example, m metric.Metric, concurrency int) ([]Trace, error) {
	if concurrency <= 0 {
		concurrency = 16
	}
	names := map[*module.Predict]string{}
	for _, np := range teacher.NamedPredictors() {
		names[np.Predictor] = np.Name
	}
	traces := make([]Trace, len(trainset))
	sem := make(chan struct{}, concurrency)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	progress(ctx, "finetune: bootstrap", 0, len(trainset))
	for i, ex := range trainset {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			traces[i] = runOne(ctx, teacher, names, i, ex, m)
			mu.Lock()
			done++
			n := done
			mu.Unlock()
			progress(ctx, "finetune: bootstrap", n, len(trainset))
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return traces, nil
}

func runOne(ctx context.Context, teacher module.Program, names map[*module.Predict]string, i int, ex example.Example, m metric.Metric) Trace {
	rec := &module.Recorder{}
	pred, err := teacher.Forward(module.WithRecorder(ctx, rec), ex.Inputs())
	if err != nil {
		return Trace{Index: i, Err: err}
	}
	r, err := m.Score(ctx, ex, pred)
	if err != nil {
		return Trace{Index: i, Err: err}
	}
	t := Trace{Index: i, Score: r.Score}
	for _, s := range rec.Steps() {
		name, ok := names[s.Predictor]
		if !ok {
			continue
		}
		t.Steps = append(t.Steps, Step{Name: name, Predictor: s.Predictor, Inputs: s.Inputs, Outputs: s.Outputs})
	}
	return t
}

// run starts (or finds again) one job and follows it to its end,
// returning the fine-tuned model.
func (o *Optimizer) run(ctx context.Context, j *job) (string, error) {
	c := o.cfg
	b := Backend{Name: c.Backend.Name, Options: c.Backend.Options}
	if r, ok := resumed(c.Resume, j.rec); ok {
		// The job this run started before: it trained on the data it was
		// given then (bootstrapping again may have made other data, with
		// an LM that is not deterministic).
		j.rec.JobID, j.rec.State, j.rec.FineTunedModel = r.JobID, r.State, r.FineTunedModel
		j.rec.IdempotencyKey, j.rec.DataHash, j.rec.Examples = r.IdempotencyKey, r.DataHash, r.Examples
	}
	if j.rec.JobID != "" && j.rec.State == StateSucceeded && j.rec.FineTunedModel != "" {
		// Finished before the restart: nothing to ask.
		publish(ctx, JobKind, recordCopy(j.rec))
		return j.rec.FineTunedModel, nil
	}
	if j.rec.JobID == "" {
		var started Job
		err := o.retry(ctx, func(ctx context.Context) error {
			var err error
			started, err = c.Trainer.StartJob(ctx, JobRequest{BaseModel: j.rec.BaseModel, TrainingJSONL: j.jsonl,
				Hyperparameters: c.Hyperparameters, Backend: b, IdempotencyKey: j.rec.IdempotencyKey})
			return err
		})
		if err != nil {
			j.rec.Error = err.Error()
			publish(ctx, JobKind, recordCopy(j.rec))
			return "", fmt.Errorf("finetune: %s: %w", j.rec.Key, err)
		}
		j.rec.JobID = started.ID
		o.note(ctx, j, started.State, started.ProviderState, started.Progress)
	} else {
		publish(ctx, JobKind, recordCopy(j.rec))
	}
	return o.follow(ctx, j, b)
}

// resumed finds the record of job among a resumed run's records: the one
// with its idempotency key, else the one with its key in the run (the
// same LM or predictor) that has a job id.
func resumed(records []JobRecord, job JobRecord) (JobRecord, bool) {
	for _, r := range records {
		if r.IdempotencyKey == job.IdempotencyKey && r.JobID != "" {
			return r, true
		}
	}
	for _, r := range records {
		if r.Key == job.Key && r.JobID != "" {
			return r, true
		}
	}
	return JobRecord{}, false
}

// follow watches a started job until it ends, following it again by id
// across plugin restarts. Cancelling ctx cancels the job.
func (o *Optimizer) follow(ctx context.Context, j *job, b Backend) (string, error) {
	c := o.cfg
	id := j.rec.JobID
	onEvent := func(ev JobEvent) error {
		publish(ctx, JobEventKind, &JobEventInfo{Key: j.rec.Key, JobID: id, State: ev.State, Progress: ev.Progress,
			Message: ev.Message, Step: ev.Step, Metrics: ev.Metrics})
		// A terminal state is recorded once, with its result (finish).
		if ev.State != "" && ev.State != j.rec.State && !Terminal(ev.State) {
			o.note(ctx, j, ev.State, "", ev.Progress)
		}
		if ev.FineTunedModel != "" {
			j.rec.FineTunedModel = ev.FineTunedModel
		}
		if ev.Error != "" {
			j.rec.Error = ev.Error
		}
		progress(ctx, fmt.Sprintf("finetune: job %s %s", id, ev.State), int(ev.Progress*100), 100)
		return nil
	}
	var deadline time.Time
	for {
		last, err := c.Trainer.WatchJob(ctx, b, id, onEvent)
		if err == nil && Terminal(last.State) {
			// The end event may come without the model: ask for the job.
			if last.State == StateSucceeded && j.rec.FineTunedModel == "" {
				if err := o.retry(ctx, func(ctx context.Context) error {
					got, err := c.Trainer.GetJob(ctx, b, id)
					j.rec.FineTunedModel = got.FineTunedModel
					return err
				}); err != nil {
					return "", o.fail(ctx, j, err)
				}
			}
			return o.finish(ctx, j, last.State, last.Error)
		}
		if ctx.Err() != nil {
			o.cancel(ctx, j, b)
			return "", ctx.Err()
		}
		if err == nil {
			err = fmt.Errorf("the job's event stream ended in state %q", last.State)
		}
		if !restarting(err) {
			return "", o.fail(ctx, j, err)
		}
		// The plugin went away mid-job: the job goes on at the provider.
		// Once the plugin is back, look the job up by id and watch again.
		if deadline.IsZero() {
			deadline = time.Now().Add(o.pluginRetry())
		}
		if time.Now().After(deadline) {
			return "", o.fail(ctx, j, err)
		}
		var got Job
		if err := o.retry(ctx, func(ctx context.Context) error {
			var err error
			got, err = c.Trainer.GetJob(ctx, b, id)
			return err
		}); err != nil {
			if ctx.Err() != nil {
				o.cancel(ctx, j, b)
				return "", ctx.Err()
			}
			return "", o.fail(ctx, j, err)
		}
		deadline = time.Time{}
		if got.State != j.rec.State && !Terminal(got.State) {
			o.note(ctx, j, got.State, got.ProviderState, got.Progress)
		}
		if Terminal(got.State) {
			j.rec.FineTunedModel = got.FineTunedModel
			return o.finish(ctx, j, got.State, got.Error)
		}
	}
}

func (o *Optimizer) finish(ctx context.Context, j *job, state, errText string) (string, error) {
	j.rec.State = state
	if errText != "" {
		j.rec.Error = errText
	}
	if state == StateSucceeded && j.rec.FineTunedModel != "" {
		j.rec.Progress = 1
		publish(ctx, JobKind, recordCopy(j.rec))
		return j.rec.FineTunedModel, nil
	}
	publish(ctx, JobKind, recordCopy(j.rec))
	why := j.rec.Error
	if why == "" {
		why = "no fine-tuned model"
	}
	return "", fmt.Errorf("%w: job %s (%s) ended %s: %s", ErrJob, j.rec.JobID, j.rec.Key, state, why)
}

// fail records a job that could not be followed; its id stays in the
// trace store, so that a resumed run follows it.
func (o *Optimizer) fail(ctx context.Context, j *job, err error) error {
	j.rec.Error = err.Error()
	publish(ctx, JobKind, recordCopy(j.rec))
	return fmt.Errorf("finetune: job %s (%s) could not be followed: %w (the job id is recorded: rerun with --resume to follow it again)",
		j.rec.JobID, j.rec.Key, err)
}

// cancel cancels a job whose run was cancelled (ctx, which still carries
// the run's bus), on a context of its own, and records the outcome.
func (o *Optimizer) cancel(ctx context.Context, j *job, b Backend) {
	cctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer stop()
	got, err := o.cfg.Trainer.CancelJob(cctx, b, j.rec.JobID)
	if err != nil {
		j.rec.Error = "cancel: " + err.Error()
	} else {
		j.rec.State, j.rec.ProviderState = got.State, got.ProviderState
	}
	publish(ctx, JobKind, recordCopy(j.rec))
}

func (o *Optimizer) note(ctx context.Context, j *job, state, providerState string, p float64) {
	if state != "" {
		j.rec.State = state
	}
	j.rec.ProviderState = providerState
	if p > 0 {
		j.rec.Progress = p
	}
	publish(ctx, JobKind, recordCopy(j.rec))
}

func recordCopy(r JobRecord) *JobRecord {
	r.Options = maps.Clone(r.Options)
	r.Predictors = append([]string(nil), r.Predictors...)
	return &r
}

func (o *Optimizer) pluginRetry() time.Duration {
	if o.cfg.PluginRetry > 0 {
		return o.cfg.PluginRetry
	}
	return 2 * time.Minute
}

// restarting reports an error of a plugin that is down or exited (and is
// being restarted by its supervisor), rather than the plugin's answer.
func restarting(err error) bool {
	return errors.Is(err, bridge.ErrPluginDown) || errors.Is(err, bridge.ErrPluginExited)
}

// retry calls f until it succeeds, fails other than with a restarting
// plugin, or the plugin stays away longer than PluginRetry.
func (o *Optimizer) retry(ctx context.Context, f func(context.Context) error) error {
	deadline := time.Now().Add(o.pluginRetry())
	wait := 100 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil || !restarting(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
