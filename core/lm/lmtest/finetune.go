package lmtest

import (
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults and limits of the simulated fine-tuning API.
const (
	// DefaultFineTuneStep is how long each stage of a simulated job lasts
	// when Config.FineTuneStep is zero.
	DefaultFineTuneStep = time.Second
	// DefaultMaxFileBytes bounds an uploaded file when Config.MaxFileBytes
	// is zero.
	DefaultMaxFileBytes = 4 << 20
	// MaxFineTuneFiles and MaxFineTuneJobs bound what one server keeps:
	// uploads and job creations beyond them are refused (400).
	MaxFineTuneFiles = 1000
	MaxFineTuneJobs  = 1000
	// FineTuneTrainingSteps is the number of training steps (one metrics
	// event each) a simulated job runs.
	FineTuneTrainingSteps = 3
	// FailSuffix is the job suffix that makes a simulated job fail.
	FailSuffix = "fail"
	// FineTuneFailureCode is the error code of a job failed on request.
	FineTuneFailureCode = "simulated_failure"
)

// Fine-tuning job states, as OpenAI names them.
const (
	JobValidatingFiles = "validating_files"
	JobQueued          = "queued"
	JobRunning         = "running"
	JobSucceeded       = "succeeded"
	JobFailed          = "failed"
	JobCancelled       = "cancelled"
)

// metadata limits, as OpenAI's.
const (
	maxMetadataKeys     = 16
	maxMetadataKeyLen   = 64
	maxMetadataValueLen = 512
	maxSuffixLen        = 64
)

// FineTuneJob is a snapshot of a simulated fine-tuning job.
type FineTuneJob struct {
	ID           string
	Model        string
	TrainingFile string
	Suffix       string
	Metadata     map[string]string
	// Status is the job's state now (see the Job* constants).
	Status string
	// FineTunedModel is set once the job succeeded.
	FineTunedModel string
	// Examples counts the training file's lines; CorrectExamples the
	// distinct dataset questions they answered correctly (the tuned
	// model's skill bonus counts these).
	Examples, CorrectExamples int
	Created                   time.Time
}

// ftFile is an uploaded file; its content is not kept.
type ftFile struct {
	id, filename, purpose string
	bytes                 int
	created               time.Time
	examples              int
	correct               int // distinct dataset questions answered correctly
	tokens                int
}

// ftJob is a job. Its state is a function of time since created (see
// timeline), unless cancelled.
type ftJob struct {
	id, model, suffix, fileID string
	metadata                  map[string]string
	hyper                     map[string]any
	seed                      int64
	created                   time.Time
	cancelled                 time.Time // zero unless cancelled
	fail                      bool
	examples, correct, tokens int
}

// fineTuning is the server's fine-tuning state.
type fineTuning struct {
	mu      sync.Mutex
	files   map[string]*ftFile
	jobs    map[string]*ftJob
	order   []*ftJob          // by creation
	byModel map[string]*ftJob // fine-tuned model id → job
	nFiles  int
	nJobs   int
}

func (s *Server) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// streamFineTuneFault+i is the random stream of Config.FineTuneFaults[i].
const streamFineTuneFault uint64 = 1 << 41

// validateFineTuneFaults checks Config.FineTuneFaults: the kinds that
// answer instead of the endpoint (429, 500, 502, 503, hang, reset).
func validateFineTuneFaults(faults []Fault) error {
	for i, f := range faults {
		if err := f.Validate(); err != nil {
			return fmt.Errorf("lmtest: fine-tune fault %d: %w", i+1, err)
		}
		switch f.Kind {
		case FaultRateLimit, FaultServerError, FaultBadGateway, FaultUnavailable, FaultHang, FaultReset:
		default:
			return fmt.Errorf("lmtest: fine-tune fault %d: kind %s does not apply to the fine-tuning endpoints (want 429, 500, 502, 503, hang or reset)", i+1, f.Kind)
		}
	}
	return nil
}

// fineTuneFault draws Config.FineTuneFaults for a fine-tuning request
// (numbered from 1 apart from model requests) and answers the one that
// fires. It reports whether a fault answered.
func (s *Server) fineTuneFault(w http.ResponseWriter, r *http.Request) bool {
	if len(s.cfg.FineTuneFaults) == 0 {
		return false
	}
	seq := s.ftSeq.Add(1)
	for i, f := range s.cfg.FineTuneFaults {
		if !f.fires(seq, s.rng(seq, streamFineTuneFault+uint64(i)).Float64()) {
			continue
		}
		if f.Kind == FaultHang {
			s.countFault(f.Kind)
			if errors.Is(s.hang(r.Context()), errServerClosed) {
				w.Header().Set("Connection", "close")
				writeError(w, http.StatusServiceUnavailable, "server_error", "simulator_closed",
					"the dspex LM simulator is shutting down")
			}
			return true
		}
		return s.failWith(w, f, &RecordedRequest{})
	}
	return false
}

// handleFineTune routes the /v1/files and /v1/fine_tuning endpoints. It
// reports false when path is not one of theirs.
func (s *Server) handleFineTune(w http.ResponseWriter, r *http.Request, path string) bool {
	if path != "/v1/files" && !strings.HasPrefix(path, "/v1/files/") &&
		path != "/v1/fine_tuning/jobs" && !strings.HasPrefix(path, "/v1/fine_tuning/jobs/") {
		return false
	}
	if s.fineTuneFault(w, r) {
		return true
	}
	switch {
	case path == "/v1/files":
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, r, http.MethodPost)
			return true
		}
		s.handleUpload(w, r)
	case strings.HasPrefix(path, "/v1/files/"):
		id := strings.TrimPrefix(path, "/v1/files/")
		if id == "" || strings.Contains(id, "/") {
			return false
		}
		if r.Method != http.MethodGet {
			s.methodNotAllowed(w, r, http.MethodGet)
			return true
		}
		s.handleGetFile(w, id)
	case path == "/v1/fine_tuning/jobs":
		switch r.Method {
		case http.MethodPost:
			s.handleCreateJob(w, r)
		case http.MethodGet:
			s.handleListJobs(w, r)
		default:
			s.methodNotAllowed(w, r, "GET, POST")
		}
	case strings.HasPrefix(path, "/v1/fine_tuning/jobs/"):
		rest := strings.TrimPrefix(path, "/v1/fine_tuning/jobs/")
		id, action, _ := strings.Cut(rest, "/")
		if id == "" || strings.Contains(action, "/") {
			return false
		}
		switch action {
		case "":
			if r.Method != http.MethodGet {
				s.methodNotAllowed(w, r, http.MethodGet)
				return true
			}
			s.handleGetJob(w, id)
		case "events":
			if r.Method != http.MethodGet {
				s.methodNotAllowed(w, r, http.MethodGet)
				return true
			}
			s.handleJobEvents(w, r, id)
		case "cancel":
			if r.Method != http.MethodPost {
				s.methodNotAllowed(w, r, http.MethodPost)
				return true
			}
			s.handleCancelJob(w, id)
		default:
			return false
		}
	default:
		return false
	}
	return true
}

// fileJSON is OpenAI's file object.
type fileJSON struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int     `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
}

func (f *ftFile) json() fileJSON {
	return fileJSON{ID: f.id, Object: "file", Bytes: f.bytes, CreatedAt: f.created.Unix(),
		Filename: f.filename, Purpose: f.purpose, Status: "processed"}
}

// handleUpload answers POST /v1/files: a multipart form with a purpose
// ("fine-tune") and a file of chat JSONL, validated here.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	limit := s.cfg.MaxFileBytes
	r.Body = http.MaxBytesReader(w, r.Body, limit+64<<10) // room for the form's other parts
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		s.reject(w, http.StatusBadRequest, "POST /v1/files wants a multipart/form-data body with the fields purpose and file")
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		s.reject(w, http.StatusBadRequest, "read multipart body: "+err.Error())
		return
	}
	var (
		purpose, filename string
		data              []byte
		haveFile          bool
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.uploadReadError(w, err, limit)
			return
		}
		switch part.FormName() {
		case "purpose":
			b, err := io.ReadAll(io.LimitReader(part, 256))
			if err != nil {
				s.uploadReadError(w, err, limit)
				return
			}
			purpose = strings.TrimSpace(string(b))
		case "file":
			filename = part.FileName()
			data, err = io.ReadAll(io.LimitReader(part, limit+1))
			if err != nil {
				s.uploadReadError(w, err, limit)
				return
			}
			if int64(len(data)) > limit {
				s.reject(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("file exceeds %d bytes (the simulator's file size limit)", limit))
				return
			}
			haveFile = true
		}
		_ = part.Close()
	}
	switch {
	case !haveFile:
		s.reject(w, http.StatusBadRequest, "missing form field file")
		return
	case purpose == "":
		s.reject(w, http.StatusBadRequest, "missing form field purpose (the simulator accepts purpose fine-tune)")
		return
	case purpose != "fine-tune":
		s.reject(w, http.StatusBadRequest, fmt.Sprintf("purpose %q is not supported: the simulator accepts purpose fine-tune only", purpose))
		return
	}
	if filename == "" {
		filename = "upload.jsonl"
	}
	exs, err := ParseTrainingFile(data)
	if err != nil {
		s.reject(w, http.StatusBadRequest, fmt.Sprintf("invalid training file %s: %v", filename, err))
		return
	}
	f := &ftFile{filename: filename, purpose: purpose, bytes: len(data), created: s.now(),
		examples: len(exs), correct: len(s.cfg.Dataset.correctExamples(exs))}
	for _, ex := range exs {
		for _, m := range ex.Messages {
			f.tokens += tokens(utf8.RuneCountInString(m.Content))
		}
	}
	ft := &s.ft
	ft.mu.Lock()
	if len(ft.files) >= MaxFineTuneFiles {
		ft.mu.Unlock()
		s.reject(w, http.StatusBadRequest, fmt.Sprintf("the simulator keeps at most %d files", MaxFineTuneFiles))
		return
	}
	ft.nFiles++
	f.id = fmt.Sprintf("file-sim-%06d", ft.nFiles)
	if ft.files == nil {
		ft.files = map[string]*ftFile{}
	}
	ft.files[f.id] = f
	ft.mu.Unlock()
	s.count(func(st *Stats) { st.Files++ })
	writeJSON(w, http.StatusOK, f.json())
}

func (s *Server) uploadReadError(w http.ResponseWriter, err error, limit int64) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.reject(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("file exceeds %d bytes (the simulator's file size limit)", limit))
		return
	}
	s.reject(w, http.StatusBadRequest, "read multipart body: "+err.Error())
}

func (s *Server) handleGetFile(w http.ResponseWriter, id string) {
	s.ft.mu.Lock()
	f, ok := s.ft.files[id]
	var body fileJSON
	if ok {
		body = f.json()
	}
	s.ft.mu.Unlock()
	if !ok {
		s.notFoundObject(w, "file", id)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) notFoundObject(w http.ResponseWriter, kind, id string) {
	s.count(func(st *Stats) { st.Rejected++ })
	writeError(w, http.StatusNotFound, "invalid_request_error", "not_found",
		fmt.Sprintf("no such %s: %s", kind, id))
}

// createJobRequest is the body of POST /v1/fine_tuning/jobs.
type createJobRequest struct {
	Model           string            `json:"model"`
	TrainingFile    string            `json:"training_file"`
	ValidationFile  *string           `json:"validation_file"`
	Suffix          *string           `json:"suffix"`
	Seed            *int64            `json:"seed"`
	Metadata        map[string]string `json:"metadata"`
	Hyperparameters map[string]any    `json:"hyperparameters"`
	Method          *struct {
		Type       string `json:"type"`
		Supervised *struct {
			Hyperparameters map[string]any `json:"hyperparameters"`
		} `json:"supervised"`
	} `json:"method"`
}

func (req *createJobRequest) validate() error {
	if strings.TrimSpace(req.Model) == "" {
		return errors.New("missing model")
	}
	if req.TrainingFile == "" {
		return errors.New("missing training_file")
	}
	if req.Suffix != nil && utf8.RuneCountInString(*req.Suffix) > maxSuffixLen {
		return fmt.Errorf("suffix is longer than %d characters", maxSuffixLen)
	}
	if len(req.Metadata) > maxMetadataKeys {
		return fmt.Errorf("metadata has %d keys; at most %d are allowed", len(req.Metadata), maxMetadataKeys)
	}
	for k, v := range req.Metadata {
		if len(k) > maxMetadataKeyLen || len(v) > maxMetadataValueLen {
			return fmt.Errorf("metadata %q: keys are at most %d characters and values %d", k, maxMetadataKeyLen, maxMetadataValueLen)
		}
	}
	if req.Method != nil && req.Method.Type != "" && req.Method.Type != "supervised" {
		return fmt.Errorf("method type %q is not supported: the simulator runs supervised jobs only", req.Method.Type)
	}
	return nil
}

// hyperparameters resolves the job's hyperparameters ("auto" and absent
// ones get the simulator's values).
func (req *createJobRequest) hyperparameters() (map[string]any, error) {
	in := req.Hyperparameters
	if req.Method != nil && req.Method.Supervised != nil && len(req.Method.Supervised.Hyperparameters) > 0 {
		in = req.Method.Supervised.Hyperparameters
	}
	out := map[string]any{"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0}
	for k, v := range in {
		if _, known := out[k]; !known {
			return nil, fmt.Errorf("unknown hyperparameter %q (want n_epochs, batch_size, learning_rate_multiplier)", k)
		}
		if s, ok := v.(string); ok && s == "auto" {
			continue
		}
		f, ok := v.(float64)
		if !ok || math.IsNaN(f) || f <= 0 {
			return nil, fmt.Errorf("hyperparameter %s must be \"auto\" or a positive number", k)
		}
		if k == "learning_rate_multiplier" {
			out[k] = f
			continue
		}
		if f != math.Trunc(f) || f > 1000 {
			return nil, fmt.Errorf("hyperparameter %s must be \"auto\" or a whole number from 1 to 1000", k)
		}
		out[k] = int(f)
	}
	return out, nil
}

func (s *Server) handleCreateJob(w http.ResponseWriter, r *http.Request) {
	var req createJobRequest
	if status := s.decodeBody(w, r, &req); status != 0 {
		return
	}
	if err := req.validate(); err != nil {
		s.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	hyper, err := req.hyperparameters()
	if err != nil {
		s.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	ft := &s.ft
	ft.mu.Lock()
	f, ok := ft.files[req.TrainingFile]
	if !ok {
		ft.mu.Unlock()
		s.reject(w, http.StatusBadRequest, fmt.Sprintf("invalid training_file: no such file: %s", req.TrainingFile))
		return
	}
	if req.ValidationFile != nil && *req.ValidationFile != "" {
		if _, ok := ft.files[*req.ValidationFile]; !ok {
			ft.mu.Unlock()
			s.reject(w, http.StatusBadRequest, fmt.Sprintf("invalid validation_file: no such file: %s", *req.ValidationFile))
			return
		}
	}
	if len(ft.jobs) >= MaxFineTuneJobs {
		ft.mu.Unlock()
		s.reject(w, http.StatusBadRequest, fmt.Sprintf("the simulator keeps at most %d fine-tuning jobs", MaxFineTuneJobs))
		return
	}
	ft.nJobs++
	j := &ftJob{
		id: fmt.Sprintf("ftjob-sim-%06d", ft.nJobs), model: req.Model, fileID: f.id,
		metadata: req.Metadata, hyper: hyper, created: s.now(),
		examples: f.examples, correct: f.correct, tokens: f.tokens,
	}
	if req.Suffix != nil {
		j.suffix = *req.Suffix
	}
	j.fail = j.suffix == FailSuffix
	if req.Seed != nil {
		j.seed = *req.Seed
	} else {
		j.seed = int64(mix64(uint64(s.cfg.Seed)^uint64(ft.nJobs)) >> 33)
	}
	if ft.jobs == nil {
		ft.jobs, ft.byModel = map[string]*ftJob{}, map[string]*ftJob{}
	}
	ft.jobs[j.id] = j
	ft.order = append(ft.order, j)
	ft.byModel[j.fineTunedModel()] = j
	body := j.json(s.step(), j.created)
	ft.mu.Unlock()
	s.count(func(st *Stats) { st.FineTuneJobs++ })
	writeJSON(w, http.StatusOK, body)
}

// step is the duration of one stage of a job.
func (s *Server) step() time.Duration { return s.cfg.FineTuneStep }

// fineTunedModel is the id the job's model gets: ft:BASE:SUFFIX:JOBID, or
// ft:BASE:JOBID without a suffix.
func (j *ftJob) fineTunedModel() string {
	if j.suffix == "" {
		return "ft:" + j.model + ":" + j.id
	}
	return "ft:" + j.model + ":" + j.suffix + ":" + j.id
}

// ftEvent is one event of a job's timeline.
type ftEvent struct {
	at      time.Time
	level   string
	message string
	typ     string // "message" or "metrics"
	data    map[string]any
	// status is the job's status from this event on ("" keeps it).
	status string
}

// timeline is the job's events up to now, oldest first, and its status.
// A job validates its file for one step, is queued for one, runs
// FineTuneTrainingSteps steps (one metrics event each) and succeeds; a job
// with suffix "fail" fails after its first training step; a cancelled
// job stops at the moment it was cancelled.
func (j *ftJob) timeline(step time.Duration, now time.Time) (events []ftEvent, status string) {
	at := func(n int) time.Time { return j.created.Add(time.Duration(n) * step) }
	all := []ftEvent{
		{at: at(0), level: "info", typ: "message", status: JobValidatingFiles,
			message: "Validating training file: " + j.fileID},
		{at: at(1), level: "info", typ: "message", status: JobQueued,
			message: "Files validated, moving job to queued state"},
		{at: at(2), level: "info", typ: "message", status: JobRunning,
			message: "Fine-tuning job started"},
	}
	total := FineTuneTrainingSteps
	for i := 1; i <= total; i++ {
		if j.fail && i == 2 {
			all = append(all, ftEvent{at: at(2 + i), level: "error", typ: "message", status: JobFailed,
				message: "Fine-tuning job failed: " + j.failureMessage()})
			break
		}
		loss := j.loss(i)
		all = append(all, ftEvent{at: at(2 + i), level: "info", typ: "metrics",
			message: fmt.Sprintf("Step %d/%d: training loss=%.4f", i, total, loss),
			data: map[string]any{"step": i, "total_steps": total, "train_loss": loss,
				"train_mean_token_accuracy": math.Round((1-loss/4)*1e4) / 1e4}})
	}
	if !j.fail {
		end := at(2 + total)
		all = append(all,
			ftEvent{at: end, level: "info", typ: "message", message: "New fine-tuned model created: " + j.fineTunedModel()},
			ftEvent{at: end, level: "info", typ: "message", status: JobSucceeded, message: "The job has successfully completed"})
	}
	for _, e := range all {
		if e.at.After(now) || (!j.cancelled.IsZero() && e.at.After(j.cancelled)) {
			break
		}
		events = append(events, e)
		if e.status != "" {
			status = e.status
		}
	}
	if !j.cancelled.IsZero() && !now.Before(j.cancelled) && !terminal(status) {
		events = append(events, ftEvent{at: j.cancelled, level: "info", typ: "message", status: JobCancelled,
			message: "Fine-tuning job cancelled"})
		status = JobCancelled
	}
	return events, status
}

func (j *ftJob) failureMessage() string {
	return fmt.Sprintf("the dspex LM simulator fails every job whose suffix is %q (job %s)", FailSuffix, j.id)
}

// loss is the simulated training loss after step i: it falls with each
// step, and faster the more examples the file has; deterministic per job.
func (j *ftJob) loss(i int) float64 {
	base := 2.0 + float64(uint64(j.seed)%1000)/1000
	l := base / (1 + float64(i)*(0.5+math.Log1p(float64(j.examples))/4))
	return math.Round(l*1e4) / 1e4
}

func terminal(status string) bool {
	return status == JobSucceeded || status == JobFailed || status == JobCancelled
}

// jobJSON is OpenAI's fine-tuning job object.
type jobJSON struct {
	ID              string            `json:"id"`
	Object          string            `json:"object"`
	CreatedAt       int64             `json:"created_at"`
	Error           *jobError         `json:"error"`
	FineTunedModel  *string           `json:"fine_tuned_model"`
	FinishedAt      *int64            `json:"finished_at"`
	Hyperparameters map[string]any    `json:"hyperparameters"`
	Model           string            `json:"model"`
	OrganizationID  string            `json:"organization_id"`
	ResultFiles     []string          `json:"result_files"`
	Seed            int64             `json:"seed"`
	Status          string            `json:"status"`
	TrainedTokens   *int              `json:"trained_tokens"`
	TrainingFile    string            `json:"training_file"`
	ValidationFile  *string           `json:"validation_file"`
	Suffix          *string           `json:"suffix"`
	Metadata        map[string]string `json:"metadata"`
	EstimatedFinish *int64            `json:"estimated_finish"`
	Integrations    []any             `json:"integrations"`
	Method          map[string]any    `json:"method"`
}

type jobError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

// json writes the job as it is at now. The caller holds ft.mu.
func (j *ftJob) json(step time.Duration, now time.Time) jobJSON {
	events, status := j.timeline(step, now)
	out := jobJSON{
		ID: j.id, Object: "fine_tuning.job", CreatedAt: j.created.Unix(), Hyperparameters: j.hyper,
		Model: j.model, OrganizationID: "org-dspex-simulator", ResultFiles: []string{}, Seed: j.seed,
		Status: status, TrainingFile: j.fileID, Metadata: j.metadata, Integrations: []any{},
		Method: map[string]any{"type": "supervised", "supervised": map[string]any{"hyperparameters": j.hyper}},
	}
	if j.suffix != "" {
		out.Suffix = &j.suffix
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if terminal(status) {
		fin := events[len(events)-1].at.Unix()
		out.FinishedAt = &fin
	} else {
		est := j.created.Add(time.Duration(2+FineTuneTrainingSteps) * step).Unix()
		out.EstimatedFinish = &est
	}
	switch status {
	case JobSucceeded:
		m := j.fineTunedModel()
		n := j.tokens * j.hyper["n_epochs"].(int)
		out.FineTunedModel, out.TrainedTokens = &m, &n
	case JobFailed:
		out.Error = &jobError{Code: FineTuneFailureCode, Message: j.failureMessage()}
	}
	return out
}

func (s *Server) handleGetJob(w http.ResponseWriter, id string) {
	s.ft.mu.Lock()
	j, ok := s.ft.jobs[id]
	var body jobJSON
	if ok {
		body = j.json(s.step(), s.now())
	}
	s.ft.mu.Unlock()
	if !ok {
		s.notFoundObject(w, "fine-tuning job", id)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// pageParams reads limit (1..100, default 20) and after.
func (s *Server) pageParams(w http.ResponseWriter, q url.Values) (limit int, after string, ok bool) {
	limit = 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			s.reject(w, http.StatusBadRequest, fmt.Sprintf("limit %q must be a whole number from 1 to 100", v))
			return 0, "", false
		}
		limit = n
	}
	return limit, q.Get("after"), true
}

// listJSON is OpenAI's cursor page.
type listJSON[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
}

// handleListJobs answers GET /v1/fine_tuning/jobs: newest first, after a
// job id, limit per page, filtered by metadata[KEY]=VALUE parameters.
func (s *Server) handleListJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, after, ok := s.pageParams(w, q)
	if !ok {
		return
	}
	filter := map[string]string{}
	for k, vs := range q {
		if key, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(key, "]") && len(vs) > 0 {
			filter[strings.TrimSuffix(key, "]")] = vs[0]
		}
	}
	page := listJSON[jobJSON]{Object: "list", Data: []jobJSON{}}
	s.ft.mu.Lock()
	now := s.now()
	started := after == ""
	for _, j := range slices.Backward(s.ft.order) {
		if !started {
			started = j.id == after
			continue
		}
		if !metadataMatches(j.metadata, filter) {
			continue
		}
		if len(page.Data) == limit {
			page.HasMore = true
			break
		}
		page.Data = append(page.Data, j.json(s.step(), now))
	}
	s.ft.mu.Unlock()
	writeJSON(w, http.StatusOK, page)
}

func metadataMatches(md, filter map[string]string) bool {
	for k, v := range filter {
		if got, ok := md[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// eventJSON is OpenAI's fine-tuning job event.
type eventJSON struct {
	ID        string         `json:"id"`
	Object    string         `json:"object"`
	CreatedAt int64          `json:"created_at"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Type      string         `json:"type"`
	Data      map[string]any `json:"data"`
}

// handleJobEvents answers GET /v1/fine_tuning/jobs/{id}/events: newest
// first, after an event id, limit per page.
func (s *Server) handleJobEvents(w http.ResponseWriter, r *http.Request, id string) {
	limit, after, ok := s.pageParams(w, r.URL.Query())
	if !ok {
		return
	}
	s.ft.mu.Lock()
	j, found := s.ft.jobs[id]
	var events []ftEvent
	if found {
		events, _ = j.timeline(s.step(), s.now())
	}
	s.ft.mu.Unlock()
	if !found {
		s.notFoundObject(w, "fine-tuning job", id)
		return
	}
	page := listJSON[eventJSON]{Object: "list", Data: []eventJSON{}}
	started := after == ""
	for i := len(events) - 1; i >= 0; i-- {
		eid := fmt.Sprintf("ftevent-%s-%02d", strings.TrimPrefix(id, "ftjob-"), i+1)
		if !started {
			started = eid == after
			continue
		}
		if len(page.Data) == limit {
			page.HasMore = true
			break
		}
		e := events[i]
		data := e.data
		if data == nil {
			data = map[string]any{}
		}
		page.Data = append(page.Data, eventJSON{ID: eid, Object: "fine_tuning.job.event", CreatedAt: e.at.Unix(),
			Level: e.level, Message: e.message, Type: e.typ, Data: data})
	}
	writeJSON(w, http.StatusOK, page)
}

// handleCancelJob answers POST /v1/fine_tuning/jobs/{id}/cancel. A job
// that already ended cannot be cancelled (400, as OpenAI answers).
func (s *Server) handleCancelJob(w http.ResponseWriter, id string) {
	s.ft.mu.Lock()
	j, found := s.ft.jobs[id]
	if !found {
		s.ft.mu.Unlock()
		s.notFoundObject(w, "fine-tuning job", id)
		return
	}
	now := s.now()
	if _, status := j.timeline(s.step(), now); terminal(status) {
		s.ft.mu.Unlock()
		s.reject(w, http.StatusBadRequest, fmt.Sprintf("job %s has already ended (%s) and cannot be cancelled", id, status))
		return
	}
	j.cancelled = now
	body := j.json(s.step(), now)
	s.ft.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// tunedExamples reports, for a model id of a job that has succeeded, the
// distinct dataset questions its training file answered correctly.
func (s *Server) tunedExamples(model string) (int, bool) {
	if !strings.HasPrefix(model, "ft:") {
		return 0, false
	}
	s.ft.mu.Lock()
	defer s.ft.mu.Unlock()
	j, ok := s.ft.byModel[model]
	if !ok {
		return 0, false
	}
	if _, status := j.timeline(s.step(), s.now()); status != JobSucceeded {
		return 0, false
	}
	return j.correct, true
}

// tunedModels lists the models of succeeded jobs, oldest first.
func (s *Server) tunedModels() []string {
	s.ft.mu.Lock()
	defer s.ft.mu.Unlock()
	var out []string
	now := s.now()
	for _, j := range s.ft.order {
		if _, status := j.timeline(s.step(), now); status == JobSucceeded {
			out = append(out, j.fineTunedModel())
		}
	}
	return out
}

// FineTuneJobs returns snapshots of the server's fine-tuning jobs, oldest
// first.
func (s *Server) FineTuneJobs() []FineTuneJob {
	s.ft.mu.Lock()
	defer s.ft.mu.Unlock()
	now := s.now()
	out := make([]FineTuneJob, 0, len(s.ft.order))
	for _, j := range s.ft.order {
		_, status := j.timeline(s.step(), now)
		job := FineTuneJob{ID: j.id, Model: j.model, TrainingFile: j.fileID, Suffix: j.suffix,
			Status: status, Examples: j.examples, CorrectExamples: j.correct, Created: j.created}
		if len(j.metadata) > 0 {
			job.Metadata = make(map[string]string, len(j.metadata))
			for k, v := range j.metadata {
				job.Metadata[k] = v
			}
		}
		if status == JobSucceeded {
			job.FineTunedModel = j.fineTunedModel()
		}
		out = append(out, job)
	}
	return out
}
