package layering

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/dspex/dspex/"

// heavy are the dependencies only the packages that open them may link:
// provider SDKs, OpenTelemetry, the cgo SQLite driver, the plugin stack.
var heavy = []string{
	"github.com/anthropics/",
	"go.opentelemetry.io/",
	"github.com/mattn/go-sqlite3",
	"github.com/hashicorp/go-plugin",
	"google.golang.org/grpc",
}

// deps returns the packages pkg depends on, itself included (go list -deps).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", module+pkg).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	var list []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		list = append(list, sc.Text())
	}
	return list
}

// TestSmallPackagesStaySmall: the packages every program and tool builds on
// link no provider SDK, no OpenTelemetry and no SQLite driver; optimizers
// and evaluation run without cgo SQLite.
func TestSmallPackagesStaySmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, pkg := range []string{
		"core/signature",
		"core/example",
		"core/adapter",
		"core/module",
		"core/lm",
		"core/lm/lmtest",
		"core/lm/openai",
		"core/tool",
		"core/config",
		"core/event",
		"core/version",
		"core/program",
		"core/programfile",
		"core/evaluate",
		"core/metric",
		"core/teleprompt",
		"core/retrieve",
	} {
		t.Run(pkg, func(t *testing.T) {
			for _, d := range deps(t, pkg) {
				for _, h := range heavy {
					if strings.HasPrefix(d, h) {
						t.Errorf("%s depends on %s", pkg, d)
					}
				}
			}
		})
	}
}

// TestCoreImportsNothingAbove: core works with no Python and no CLI, so no
// core package depends on bridge, plugins, sandbox or cmd.
func TestCoreImportsNothingAbove(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", module+"core/...").Output()
	if err != nil {
		t.Fatalf("go list -deps core/...: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		for _, above := range []string{"bridge", "plugins", "sandbox", "cmd"} {
			if d == module+above || strings.HasPrefix(d, module+above+"/") {
				t.Errorf("a core package depends on %s", d)
			}
		}
	}
}

// TestBridgeKnowsNoLM: the plugin bridge knows processes and protos, not LMs
// or modules; of the core it imports only events and config values.
func TestBridgeKnowsNoLM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	allowed := map[string]bool{module + "core/event": true, module + "core/config": true}
	for _, d := range deps(t, "bridge") {
		if strings.HasPrefix(d, module+"core/") && !allowed[d] {
			t.Errorf("bridge depends on %s", d)
		}
	}
}
