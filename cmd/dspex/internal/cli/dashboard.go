package cli

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/cmd/dspex/internal/dashboard"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/trace"
)

// tokenEnv is where --token and --dashboard-token default from, so that a
// token need not show in the process list.
const tokenEnv = "DSPEX_DASHBOARD_TOKEN"

func newDashboardCommand(s *streams) *cobra.Command {
	var db, addr, token string
	cmd := &cobra.Command{
		Use:   "dashboard [--db FILE] [--addr 127.0.0.1:PORT] [--token TOKEN]",
		Short: "Serve the live dashboard of the runs in a trace database",
		Long: `Serve a web page of the runs in a trace database: every run with its status
(a run whose process died shows as died), then each run live — progress,
score per trial with the best so far, candidates with their instructions and
demos, tokens and cost, LM latency and cache hits, errors with the raw LM
output, plugin and breaker states — and each LM call's full messages and
response. Runs in other processes are followed by tailing the database.

The dashboard is read-only and needs no network (everything is in the
binary). It listens on 127.0.0.1 unless told otherwise; an address beyond
this machine needs --token (or $DSPEX_DASHBOARD_TOKEN), and then every
request must carry it: open http://HOST:PORT/?token=TOKEN once, or send
"Authorization: Bearer TOKEN". See docs/dashboard.md.

On start it prints one line to stdout, "dspex dashboard listening on
http://ADDR/" (with the real port when --addr ends in :0); SIGINT or SIGTERM
stops it.`,
		Example: `  dspex dashboard --db traces.db
  dspex dashboard --addr 0.0.0.0:8090 --token "$(openssl rand -hex 16)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDashboard(cmd.Context(), s, db, addr, token)
		},
	}
	cmd.Flags().StringVar(&db, "db", "", dbFlagUsage)
	cmd.Flags().StringVar(&addr, "addr", dashboard.DefaultAddr, "host:port to listen on (port 0 picks a free port); beyond loopback it needs --token")
	cmd.Flags().StringVar(&token, "token", os.Getenv(tokenEnv), "token every request must carry (default $"+tokenEnv+"); required beyond loopback")
	return cmd
}

func runDashboard(ctx context.Context, s *streams, db, addr, token string) error {
	if db == "" {
		p, err := trace.DefaultPath()
		if err != nil {
			return fmt.Errorf("trace database: %w (pass --db)", err)
		}
		db = p
	}
	d, err := dashboard.New(dashboard.Config{DB: db, Addr: addr, Token: token, ErrorLog: log.New(s.err, "dspex dashboard: ", 0)})
	if err != nil {
		return usageErrorFrom(err)
	}
	url, err := d.Listen()
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "dspex dashboard listening on %s\n", url)
	errc := make(chan error, 1)
	go func() { errc <- d.Serve() }()
	select {
	case <-ctx.Done():
		return d.Close()
	case err := <-errc:
		d.Close()
		return err
	}
}

// usageErrorFrom makes a refused dashboard configuration (a non-loopback
// address without a token, a bad address) a usage error.
func usageErrorFrom(err error) error {
	return &ExitError{Code: 2, Err: err}
}

// registerDashboard adds --dashboard and --dashboard-token to a command
// that runs programs (eval, optimize, serve).
func (f *observeFlags) registerDashboard(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dashboard, "dashboard", "", "serve the live dashboard of this run at host:port while it runs (e.g. 127.0.0.1:8090; port 0 picks one; see docs/dashboard.md)")
	cmd.Flags().StringVar(&f.dashboardToken, "dashboard-token", os.Getenv(tokenEnv), "token the dashboard requires (default $"+tokenEnv+"); needed when --dashboard is beyond loopback")
}

// startDashboard serves the dashboard of the run from its own process:
// pages read the trace store the run writes, and the bus adds progress.
func (o *observer) startDashboard(s *streams, f *observeFlags, bus *event.Bus) error {
	if f.dashboard == "" {
		return nil
	}
	if o.store == nil {
		return usageError("--dashboard shows the run from its trace database: drop --no-traces (or fix the trace database)")
	}
	d, err := dashboard.New(dashboard.Config{DB: o.store.Path(), Addr: f.dashboard, Token: f.dashboardToken, Bus: bus,
		ErrorLog: log.New(s.err, "dspex dashboard: ", 0)})
	if err != nil {
		return usageErrorFrom(err)
	}
	url, err := d.Listen()
	if err != nil {
		d.Close()
		return err
	}
	o.dash = d
	go func() { _ = d.Serve() }()
	fmt.Fprintf(s.err, "dspex: dashboard of this run at %sruns/%s (it stops when the command ends; dspex dashboard --db %s shows the run later)\n",
		url, o.run.RunID, o.store.Path())
	return nil
}
