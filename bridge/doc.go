// Package bridge starts, supervises and talks to DSPEx's plugin processes:
// the Python servers behind MIPROv2's sampler, fine-tuning and CodeAct's
// interpreter. It knows processes and the protos in bridge/proto, not LMs
// or modules; plugins/<capability> packages build typed APIs on top of it.
//
// # Transport
//
// A plugin is a process started directly (never through a shell) with
// github.com/hashicorp/go-plugin: the host sets the magic cookie
// DSPEX_PLUGIN_MAGIC_COOKIE, the plugin listens on a unix socket and prints
// the handshake line "1|1|unix|<path>|grpc" on stdout, and from then on the
// two speak gRPC only (AutoMTLS off: the socket lives in a private
// directory). Every plugin serves grpc.health.v1 (service "plugin"),
// go-plugin's GRPCController and GRPCStdio, dspex.plugin.v1.PluginInfo and
// its capability services. The plugin's stderr — hclog JSON lines, or any
// other text — is published on the event bus as event.PluginLog events.
//
// # Supervision
//
// go-plugin restarts nothing; a Plugin does. Each Plugin owns one
// supervisor goroutine that starts the process (lazily on first use, or at
// once with SupervisorConfig.Eager), bounds the start with StartTimeout,
// watches the process's exit, health-checks it every HealthInterval with a
// HealthTimeout deadline, and kills it after HealthFailures failures in a
// row. A process that ends, fails to start or is killed for its health is
// restarted after an exponential backoff, unless MaxRestarts restarts have
// already happened within RestartWindow (OTP's intensity and period): then
// the supervisor gives up, and calls fail with ErrGaveUp wrapping the last
// exit reason. Every start, exit, restart, give-up and failed health check
// is an event on the bus (event.PluginStart and friends).
//
// # Calls
//
// Plugin.Conn is a grpc.ClientConnInterface for the generated clients
// (pluginv1.NewSamplerClient(p.Conn())). It stays valid across restarts:
// each call goes to the process running at the time, through the plugin's
// circuit breaker, and honours the caller's context. While the plugin is
// down calls fail fast with ErrPluginDown; a call in flight when the
// process dies fails with ErrPluginExited, naming the plugin and how the
// process ended; neither ever hangs. Plugin.WaitReady waits for a restart.
//
// # Configuration
//
// Config (YAML-decodable, see LoadConfig) names the Python interpreter,
// the plugins and the capability each serves; DefaultConfig holds the
// built-in registry (the echo and sampler plugins). Host creates one Plugin per name on
// demand and resolves capabilities, with an optional per-optimizer
// override, to plugins.
//
// A Go program can itself be a plugin: Serve does the plugin side of the
// handshake. The package's tests use it to run their own test binary as a
// fake plugin, so they need no Python.
package bridge
