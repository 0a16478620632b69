package bridge

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
)

// exitWait bounds how long a call whose connection failed waits to learn
// whether the process died, before reporting the plugin unreachable.
const exitWait = 2 * time.Second

// deadlineSlack is how close to the caller's deadline a DeadlineExceeded
// status counts as the caller's deadline.
const deadlineSlack = 100 * time.Millisecond

// Conn returns a connection for the generated gRPC clients
// (pluginv1.NewSamplerClient(p.Conn())). It stays valid across restarts:
// each call goes to the process running when it is made, through the
// plugin's breaker. A call made before the first start starts the plugin
// and waits for it, within the call's context; a call made while the
// plugin is down fails fast with ErrPluginDown; a call in flight when the
// process dies fails with ErrPluginExited; a call whose context ends
// returns at once with an error wrapping the context's error. Errors the
// plugin itself answers with (a gRPC status) come back unchanged. Safe
// for concurrent use.
func (p *Plugin) Conn() grpc.ClientConnInterface { return pluginConn{p} }

type pluginConn struct{ p *Plugin }

var _ grpc.ClientConnInterface = pluginConn{}

func (c pluginConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.p.do(ctx, method, func(ctx context.Context, gen *generation) error {
		return gen.conn.Invoke(ctx, method, args, reply, opts...)
	})
}

func (c pluginConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	var (
		cs  grpc.ClientStream
		g   *generation
		err error
	)
	err = c.p.do(ctx, method, func(ctx context.Context, gen *generation) error {
		g = gen
		cs, err = gen.conn.NewStream(ctx, desc, method, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pluginStream{ClientStream: cs, p: c.p, gen: g, ctx: ctx, method: method}, nil
}

// pluginStream translates a stream's transport errors as calls' are: a
// stream open when the process dies fails with ErrPluginExited.
type pluginStream struct {
	grpc.ClientStream
	p      *Plugin
	gen    *generation
	ctx    context.Context
	method string
}

func (s *pluginStream) SendMsg(m any) error { return s.translate(s.ClientStream.SendMsg(m)) }
func (s *pluginStream) RecvMsg(m any) error { return s.translate(s.ClientStream.RecvMsg(m)) }

func (s *pluginStream) translate(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return s.p.callError(s.ctx, s.gen, s.method, err)
}

// do runs call on the running process, through the breaker.
func (p *Plugin) do(ctx context.Context, method string, call func(context.Context, *generation) error) error {
	gen, cb, err := p.acquire(ctx, method)
	if err != nil {
		return err
	}
	var callErr error
	ran := false
	_, err = cb.Execute(func() (struct{}, error) {
		ran = true
		callErr = p.callError(ctx, gen, method, call(ctx, gen))
		return struct{}{}, callErr
	})
	if ran {
		return callErr
	}
	return &Error{Plugin: p.name, Op: "call " + method, Kind: ErrPluginDown,
		Detail: "(circuit breaker " + cb.State().String() + ": failing fast)", Err: err}
}

// callError explains a failed call: the caller's context ended, the
// process died, the plugin was shut down or cannot be reached — or, for a
// status the plugin answered with, nothing to add.
func (p *Plugin) callError(ctx context.Context, gen *generation, method string, err error) error {
	if err == nil {
		return nil
	}
	op := "call " + method
	if cerr := ctx.Err(); cerr != nil {
		return &Error{Plugin: p.name, Op: op, Kind: cerr, Err: err}
	}
	code := status.Code(err)
	if code == codes.DeadlineExceeded {
		// gRPC sends the caller's deadline along; the plugin's side may
		// expire it a moment before the caller's context does.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < deadlineSlack {
			return &Error{Plugin: p.name, Op: op, Kind: context.DeadlineExceeded, Err: err}
		}
	}
	if code != codes.Unavailable && code != codes.Canceled {
		return err
	}
	// The connection failed under the call (Canceled without the caller
	// cancelling means the host closed it): find out whether the process
	// died.
	t := time.NewTimer(p.exitWait)
	defer t.Stop()
	select {
	case <-gen.exited():
		if p.stopped() {
			return &Error{Plugin: p.name, Op: op, Kind: ErrClosed, Err: err}
		}
		st := gen.status()
		return &Error{Plugin: p.name, Op: op, Kind: ErrPluginExited, Exit: &st, Err: err}
	case <-ctx.Done():
		return &Error{Plugin: p.name, Op: op, Kind: ctx.Err(), Err: err}
	case <-p.life.Done():
		return &Error{Plugin: p.name, Op: op, Kind: ErrClosed, Err: err}
	case <-t.C:
		return &Error{Plugin: p.name, Op: op, Kind: ErrPluginDown, Detail: "(unreachable)", Err: err}
	}
}

// checkHealth asks conn's grpc.health.v1 service about service "plugin".
func checkHealth(ctx context.Context, conn grpc.ClientConnInterface) error {
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: plugin.GRPCServiceName})
	if err != nil {
		return err
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health status %s", s)
	}
	return nil
}

// Check runs a health check (grpc.health.v1, service "plugin") as a call:
// through the breaker, within ctx.
func (p *Plugin) Check(ctx context.Context) error {
	return checkHealth(ctx, p.Conn())
}

// Info asks the plugin for its name, version, protocol and capabilities.
func (p *Plugin) Info(ctx context.Context) (*pluginv1.InfoResponse, error) {
	return pluginv1.NewPluginInfoClient(p.Conn()).Info(ctx, &pluginv1.InfoRequest{})
}

// Echo returns a client of the plugin's echo capability.
func (p *Plugin) Echo() pluginv1.EchoClient { return pluginv1.NewEchoClient(p.Conn()) }
