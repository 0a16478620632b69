package bridge

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/core/event"
)

// The test binary doubles as the fake plugin: started with fakeEnv set, it
// serves PluginInfo and Echo through Serve, behaving as fakeEnv says:
//
//   - normal: a well-behaved echo plugin.
//   - garbage: prints a line of garbage on stdout before the handshake.
//   - silent: never prints a handshake (hangs until killed).
//   - exit: writes to stderr and exits with code 3 at once.
//   - crash-after: answers fakeCrashAfterEnv Echo calls, then exits with
//     code 2 on the next one.
//   - hang: Echo never answers and ignores cancellation.
//   - unhealthy: passes its first health check, then every later one
//     hangs until its deadline.
//   - stubborn: ignores GRPCController.Shutdown (it hangs).
//   - unavailable: Echo answers with status Unavailable while the process
//     stays up.
const (
	fakeEnv           = "DSPEX_BRIDGE_FAKE_PLUGIN"
	fakeCrashAfterEnv = "DSPEX_BRIDGE_FAKE_CRASH_AFTER"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		runFake(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runFake(mode string) {
	logger := hclog.New(&hclog.LoggerOptions{Name: "fake", Output: os.Stderr, JSONFormat: true, Level: hclog.Debug})
	switch mode {
	case "garbage":
		fmt.Println("hello, I am not a handshake")
	case "silent":
		logger.Info("fake plugin: never printing a handshake")
		time.Sleep(10 * time.Minute)
		os.Exit(1)
	case "exit":
		fmt.Fprintln(os.Stderr, "fake plugin: exiting at once")
		os.Exit(3)
	}
	crashAfter := -1
	if v := os.Getenv(fakeCrashAfterEnv); v != "" {
		crashAfter, _ = strconv.Atoi(v)
	}
	srv := &fakeServer{mode: mode, crashAfter: int64(crashAfter), logger: logger}
	var healthChecks atomic.Int64
	intercept := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		switch {
		case mode == "unhealthy" && info.FullMethod == "/grpc.health.v1.Health/Check":
			if healthChecks.Add(1) > 1 {
				<-ctx.Done()
				return nil, status.Error(codes.DeadlineExceeded, "fake: health check hung")
			}
		case mode == "stubborn" && info.FullMethod == controllerShutdown:
			logger.Info("fake plugin: ignoring shutdown")
			select {}
		}
		return handler(ctx, req)
	}
	logger.Info("fake plugin serving", "mode", mode, "pid", os.Getpid())
	Serve(ServeConfig{
		Register: func(s *grpc.Server) {
			pluginv1.RegisterPluginInfoServer(s, srv)
			pluginv1.RegisterEchoServer(s, srv)
		},
		ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(intercept)},
		Logger:        logger,
	})
}

type fakeServer struct {
	pluginv1.UnimplementedPluginInfoServer
	pluginv1.UnimplementedEchoServer
	mode       string
	crashAfter int64
	calls      atomic.Int64
	logger     hclog.Logger
}

func (f *fakeServer) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return &pluginv1.InfoResponse{Name: "fake", Version: "0.0.1", Capabilities: []string{"echo"},
		Protocol: Protocol, Details: map[string]string{"mode": f.mode}}, nil
}

func (f *fakeServer) Echo(_ context.Context, req *pluginv1.EchoRequest) (*pluginv1.EchoResponse, error) {
	n := f.calls.Add(1)
	switch {
	case f.mode == "hang":
		f.logger.Info("fake plugin: hanging in Echo")
		select {}
	case f.mode == "unavailable":
		return nil, status.Error(codes.Unavailable, "fake: unavailable")
	case f.crashAfter >= 0 && n > f.crashAfter:
		f.logger.Error("fake plugin: crashing", "calls", n)
		os.Exit(2)
	}
	f.logger.Debug("echo called", "message", req.GetMessage())
	return &pluginv1.EchoResponse{Message: req.GetMessage(), Payload: req.GetPayload(), Pid: int64(os.Getpid())}, nil
}

func (f *fakeServer) Sleep(ctx context.Context, req *pluginv1.SleepRequest) (*pluginv1.SleepResponse, error) {
	f.logger.Info("sleep started", "seconds", req.GetSeconds())
	select {
	case <-time.After(time.Duration(req.GetSeconds() * float64(time.Second))):
		return &pluginv1.SleepResponse{}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (f *fakeServer) Crash(_ context.Context, req *pluginv1.CrashRequest) (*pluginv1.CrashResponse, error) {
	os.Exit(int(req.GetExitCode()))
	return nil, nil
}

// fakeSpec starts the test binary as the fake plugin in mode.
func fakeSpec(mode string, env ...string) PluginSpec {
	spec := PluginSpec{Command: os.Args[0], Env: map[string]string{fakeEnv: mode}, Capabilities: []string{"echo"}}
	for i := 0; i+1 < len(env); i += 2 {
		spec.Env[env[i]] = env[i+1]
	}
	return spec
}

// fastConfig supervises quickly, for tests.
func fastConfig() SupervisorConfig {
	return SupervisorConfig{
		StartTimeout:    config.Duration(15 * time.Second),
		HealthInterval:  config.Duration(100 * time.Millisecond),
		HealthTimeout:   config.Duration(300 * time.Millisecond),
		HealthFailures:  2,
		BackoffInitial:  config.Duration(10 * time.Millisecond),
		BackoffMax:      config.Duration(100 * time.Millisecond),
		MaxRestarts:     3,
		RestartWindow:   config.Duration(30 * time.Second),
		ShutdownTimeout: config.Duration(3 * time.Second),
	}
}

// recorder keeps every event published on its bus.
type recorder struct {
	bus *event.Bus
	mu  sync.Mutex
	evs []event.Event
	new chan struct{}
}

func newRecorder(t testing.TB) *recorder {
	r := &recorder{bus: event.NewBus(), new: make(chan struct{}, 1)}
	_, err := r.bus.Subscribe(event.SubscribeOptions{Name: "test", Buffer: 4096}, func(ev event.Event) {
		r.mu.Lock()
		r.evs = append(r.evs, ev)
		r.mu.Unlock()
		select {
		case r.new <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.bus.Close)
	return r
}

func (r *recorder) events(kind event.Kind) []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event.Event
	for _, ev := range r.evs {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// infos returns the PluginInfo payloads of kind.
func (r *recorder) infos(kind event.Kind) []*event.PluginInfo {
	var out []*event.PluginInfo
	for _, ev := range r.events(kind) {
		out = append(out, ev.Data.(*event.PluginInfo))
	}
	return out
}

// waitFor waits until an event of kind satisfying ok (nil: any) arrives.
func (r *recorder) waitFor(t testing.TB, kind event.Kind, ok func(event.Event) bool) event.Event {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		for _, ev := range r.events(kind) {
			if ok == nil || ok(ev) {
				return ev
			}
		}
		select {
		case <-r.new:
		case <-deadline:
			t.Fatalf("no %s event within 15s; got %s", kind, r.summary())
		}
	}
}

func (r *recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, ev := range r.evs {
		if ev.Kind == event.PluginLog {
			continue
		}
		fmt.Fprintf(&b, "\n  %s %+v", ev.Kind, ev.Data)
	}
	return b.String()
}

// startPlugin creates a plugin from spec reporting to rec's bus, shut down
// at the end of the test.
func startPlugin(t testing.TB, name string, spec PluginSpec, cfg SupervisorConfig, rec *recorder) *Plugin {
	t.Helper()
	opts := Options{}
	if rec != nil {
		opts.Bus = rec.bus
	}
	p, err := NewPlugin(name, spec, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// echo makes one Echo call and returns the serving pid.
func echo(t testing.TB, p *Plugin, msg string) int {
	t.Helper()
	resp, err := p.Echo().Echo(ctxTimeout(t, 10*time.Second), &pluginv1.EchoRequest{Message: msg, Payload: []byte(msg)})
	if err != nil {
		t.Fatalf("echo %q: %v", msg, err)
	}
	if resp.GetMessage() != msg || string(resp.GetPayload()) != msg {
		t.Fatalf("echo %q: got message %q payload %q", msg, resp.GetMessage(), resp.GetPayload())
	}
	return int(resp.GetPid())
}

// goroutinesSettle waits until at most baseline goroutines run.
func goroutinesSettle(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
