// Package finetunetest starts the Python fine-tuning plugin of this
// checkout for Go tests, through a real bridge host, or skips the test
// when no Python with the plugin and its openai extra is at hand.
package finetunetest

import (
	"testing"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/bridge/bridgetest"
)

// PluginName is the fine-tuning plugin's name in the built-in registry.
const PluginName = bridge.FineTunePlugin

// Python returns the interpreter the plugin runs with ($DSPEX_PYTHON, else
// the repository's .venv) and the checkout's python/ directory, skipping
// the test when there is none.
func Python(t testing.TB) (python, pythonPath string) {
	t.Helper()
	return bridgetest.Python(t, "", "")
}

// Imports reports whether python imports every module of code's import
// statement (e.g. "import transformers, torch").
func Imports(python, pythonPath, code string) bool {
	return bridgetest.Imports(python, pythonPath, code)
}

// Host returns a bridge host whose fine-tuning plugin runs this
// checkout's python/ and restarts quickly after a kill. The host shuts down
// when the test ends. Without a Python that imports
// dspex_plugins.finetune and openai, the test is skipped.
func Host(t testing.TB) *bridge.Host {
	t.Helper()
	return HostWith(t, "import dspex_plugins.finetune, openai")
}

// HostWith is Host for a Python that runs the import statement probe
// (e.g. "import dspex_plugins.finetune, torch" for the local backend).
func HostWith(t testing.TB, probe string) *bridge.Host {
	t.Helper()
	return bridgetest.Host(t, PluginName, probe, "make setup installs the finetune extra")
}
