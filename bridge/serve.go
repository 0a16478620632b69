package bridge

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ServeConfig configures Serve.
type ServeConfig struct {
	// Register adds the plugin's services to the server: PluginInfo and
	// those of its capabilities. Health, GRPCController and GRPCStdio are
	// added by go-plugin.
	Register func(*grpc.Server)
	// ServerOptions are passed to grpc.NewServer (interceptors, limits).
	ServerOptions []grpc.ServerOption
	// Logger is the plugin's logger. Default: hclog JSON lines on stderr at
	// Debug, which the host publishes as event.PluginLog events.
	Logger hclog.Logger
}

// Serve makes the calling process a DSPEx plugin written in Go, the
// counterpart of the Python SDK: it checks the magic cookie, listens on a
// unix socket, prints the handshake and serves gRPC until the host shuts
// it down; then it returns and the caller should exit. Started by hand
// (no magic cookie) it explains that and exits with status 1. The
// package's tests run their own binary through it as a fake plugin.
func Serve(cfg ServeConfig) {
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Debug})
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  plugin.HandshakeConfig{MagicCookieKey: MagicCookieKey, MagicCookieValue: MagicCookieValue},
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: {grpcPluginName: &connPlugin{register: cfg.Register}}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, cfg.ServerOptions...)...)
		},
		Logger: logger,
	})
}
