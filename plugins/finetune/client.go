package finetune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dspex/dspex/bridge"
	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
)

// Capability is the capability the plugin serves.
const Capability = "finetune"

// PluginName is the name of the built-in fine-tuning plugin
// (`<python> -m dspex_plugins.finetune`).
const PluginName = bridge.FineTunePlugin

// Backends the plugin offers (StartJobRequest.backend).
const (
	// BackendOpenAI trains through an OpenAI-compatible files and
	// fine-tuning jobs API (extra `finetune`); its options: base_url
	// (required), api_key_env, poll_interval, suffix.
	BackendOpenAI = "openai"
	// BackendLocal fine-tunes a local model directory with Hugging Face
	// transformers (extra `finetune-local`); its options: output_dir,
	// epochs, learning_rate, max_steps.
	BackendLocal = "local"
)

// The portable job states.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
)

// Terminal reports whether a job in state has ended.
func Terminal(state string) bool {
	return state == StateSucceeded || state == StateFailed || state == StateCancelled
}

// Errors the plugin answers with, for errors.Is. Each call's error is an
// *Error that keeps the gRPC status (status.Code works on it) and wraps the
// bridge's errors (bridge.ErrPluginDown, bridge.ErrPluginExited).
var (
	// ErrNotFound: the provider has no such job.
	ErrNotFound = errors.New("finetune: not found")
	// ErrInvalid: a bad request, or training data the provider rejected
	// (the message is the provider's).
	ErrInvalid = errors.New("finetune: invalid request")
	// ErrPrecondition: the backend's packages are not installed in the
	// plugin's Python (the message names the extra to install).
	ErrPrecondition = errors.New("finetune: failed precondition")
	// ErrUnavailable: the provider could not be reached (after the
	// plugin's retries; the message names the base URL).
	ErrUnavailable = errors.New("finetune: provider unavailable")
	// ErrPermission: the provider refused the key.
	ErrPermission = errors.New("finetune: permission denied")
)

// Error is a failed fine-tuning call.
type Error struct {
	Op  string // "start job", "watch job", "get job", "cancel job"
	Job string // the job id, or "" before there is one
	Err error
}

func (e *Error) Error() string {
	what := e.Op
	if e.Job != "" {
		what += " " + e.Job
	}
	return fmt.Sprintf("finetune: %s: %s", what, e.reason())
}

// reason is the plugin's own message when it answered (its status and
// description), else the bridge's or the call's error.
func (e *Error) reason() string {
	if errors.Is(e.Err, bridge.ErrPluginExited) || errors.Is(e.Err, bridge.ErrClosed) {
		return e.Err.Error()
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(e.Err, &se) {
		if st := se.GRPCStatus(); st.Code() != codes.OK && st.Code() != codes.Unknown {
			return fmt.Sprintf("%s (%s)", st.Message(), codeWords(st.Code()))
		}
	}
	return e.Err.Error()
}

// Unwrap returns the call's error (a gRPC status error, or the bridge's).
func (e *Error) Unwrap() error { return e.Err }

// Is maps the call's gRPC status to ErrNotFound, ErrInvalid,
// ErrPrecondition, ErrUnavailable and ErrPermission. A plugin that exited or was shut
// down is none of them (bridge.ErrPluginExited, bridge.ErrClosed). gRPC
// says UNAVAILABLE both for the plugin's answer (the provider cannot be
// reached) and for a connection that failed; the bridge reports either as
// bridge.ErrPluginDown while its process lives, and both match
// ErrUnavailable.
func (e *Error) Is(target error) bool {
	if errors.Is(e.Err, bridge.ErrPluginExited) || errors.Is(e.Err, bridge.ErrClosed) {
		return false
	}
	switch status.Code(e.Err) {
	case codes.NotFound:
		return target == ErrNotFound
	case codes.InvalidArgument:
		return target == ErrInvalid
	case codes.FailedPrecondition:
		return target == ErrPrecondition
	case codes.Unavailable:
		return target == ErrUnavailable
	case codes.PermissionDenied:
		return target == ErrPermission
	}
	return false
}

// codeWords spells a gRPC code in lower-case words ("failed precondition").
func codeWords(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Backend is the trainer a job runs on, and its options. It travels with
// every call, so that a job is followed by id alone after a restart.
type Backend struct {
	// Name is BackendOpenAI (also "") or BackendLocal.
	Name    string
	Options map[string]string
}

// JobRequest starts a job.
type JobRequest struct {
	BaseModel       string
	TrainingJSONL   []byte
	Hyperparameters map[string]string
	Backend         Backend
	// IdempotencyKey: a second start with the same key returns the job the
	// first started.
	IdempotencyKey string
}

// Job is a job's status.
type Job struct {
	ID             string
	State          string
	FineTunedModel string
	Error          string
	Progress       float64
	Metrics        map[string]float64
	// ProviderState is the backend's own word for the state.
	ProviderState string
}

// JobEvent is one step of a watched job.
type JobEvent struct {
	JobID          string
	State          string
	Progress       float64
	Message        string
	Metrics        map[string]float64
	Step           int64
	FineTunedModel string
	Error          string
}

// Client calls the FineTuner service. Safe for concurrent use.
type Client struct {
	rpc pluginv1.FineTunerClient
}

// New returns a client over a plugin's connection (bridge.Plugin.Conn,
// which stays valid across restarts).
func New(conn grpc.ClientConnInterface) *Client {
	return &Client{rpc: pluginv1.NewFineTunerClient(conn)}
}

// Open returns a client of the plugin that serves Capability on host
// (plugin, if not "", names it), and that plugin.
func Open(host *bridge.Host, plugin string) (*Client, *bridge.Plugin, error) {
	p, err := host.ForCapability(Capability, plugin)
	if err != nil {
		return nil, nil, fmt.Errorf("finetune: open: %w", err)
	}
	return New(p.Conn()), p, nil
}

// StartJob uploads the training data and starts a job (or, for a key
// already used, returns that job).
func (c *Client) StartJob(ctx context.Context, r JobRequest) (Job, error) {
	resp, err := c.rpc.StartJob(ctx, &pluginv1.StartJobRequest{
		BaseModel: r.BaseModel, TrainingJsonl: r.TrainingJSONL, Hyperparameters: r.Hyperparameters,
		Backend: r.Backend.Name, BackendOptions: r.Backend.Options, IdempotencyKey: r.IdempotencyKey,
	})
	if err != nil {
		return Job{}, &Error{Op: "start job", Err: err}
	}
	return jobOf(resp), nil
}

// GetJob looks a job up by id.
func (c *Client) GetJob(ctx context.Context, b Backend, id string) (Job, error) {
	resp, err := c.rpc.GetJob(ctx, &pluginv1.GetJobRequest{JobId: id, Backend: b.Name, BackendOptions: b.Options})
	if err != nil {
		return Job{}, &Error{Op: "get job", Job: id, Err: err}
	}
	return jobOf(resp), nil
}

// CancelJob cancels a job.
func (c *Client) CancelJob(ctx context.Context, b Backend, id string) (Job, error) {
	resp, err := c.rpc.CancelJob(ctx, &pluginv1.CancelJobRequest{JobId: id, Backend: b.Name, BackendOptions: b.Options})
	if err != nil {
		return Job{}, &Error{Op: "cancel job", Job: id, Err: err}
	}
	return jobOf(resp), nil
}

// WatchJob streams the job's events to fn until the job ends (the stream's
// last event is in a terminal state), fn fails, or the stream breaks. It
// returns the last event seen; the stream ending without a terminal event
// is an error.
func (c *Client) WatchJob(ctx context.Context, b Backend, id string, fn func(JobEvent) error) (JobEvent, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.WatchJob(ctx, &pluginv1.WatchJobRequest{JobId: id, Backend: b.Name, BackendOptions: b.Options})
	if err != nil {
		return JobEvent{}, &Error{Op: "watch job", Job: id, Err: err}
	}
	var last JobEvent
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			if Terminal(last.State) {
				return last, nil
			}
			return last, &Error{Op: "watch job", Job: id, Err: fmt.Errorf("the stream ended in state %q, before the job ended", last.State)}
		}
		if err != nil {
			return last, &Error{Op: "watch job", Job: id, Err: err}
		}
		last = eventOf(ev)
		if fn != nil {
			if err := fn(last); err != nil {
				return last, err
			}
		}
		if Terminal(last.State) {
			return last, nil
		}
	}
}

func jobOf(s *pluginv1.JobStatus) Job {
	return Job{ID: s.GetJobId(), State: s.GetState(), FineTunedModel: s.GetFineTunedModel(), Error: s.GetError(),
		Progress: s.GetProgress(), Metrics: maps.Clone(s.GetMetrics()), ProviderState: s.GetProviderState()}
}

func eventOf(e *pluginv1.JobEvent) JobEvent {
	return JobEvent{JobID: e.GetJobId(), State: e.GetState(), Progress: e.GetProgress(), Message: e.GetMessage(),
		Metrics: maps.Clone(e.GetMetrics()), Step: e.GetStep(), FineTunedModel: e.GetFineTunedModel(), Error: e.GetError()}
}
