// Package samplertest starts the Python sampler plugin of this checkout
// for Go tests, through a real bridge host, or skips the test when no
// Python with the plugin and Optuna is at hand.
package samplertest

import (
	"testing"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/bridge/bridgetest"
)

// Host returns a bridge host whose sampler plugin (bridge.SamplerPlugin)
// runs this checkout's python/ with $DSPEX_PYTHON, else the repository's
// .venv, and restarts quickly after a kill. The host shuts down when the
// test ends. Without a Python that imports dspex_plugins.sampler and
// optuna, the test is skipped.
func Host(t testing.TB) *bridge.Host {
	t.Helper()
	return bridgetest.Host(t, bridge.SamplerPlugin, "import dspex_plugins.sampler, optuna",
		"make setup installs the sampler extra")
}
