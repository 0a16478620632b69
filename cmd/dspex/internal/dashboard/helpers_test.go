package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/dspex/dspex/cmd/dspex/internal/clitest"
)

// The runs the dashboard shows are made by real dspex processes: the
// binary is built once, by the first test that needs it (fuzzing needs
// none).
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// dspexPath returns the dspex binary, building it the first time.
func dspexPath(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "dspex-dashboard"); buildErr != nil {
			return
		}
		build := exec.Command("go", "build", "-o", filepath.Join(buildDir, "dspex"), "github.com/dspex/dspex/cmd/dspex")
		out, err := build.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build dspex: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "dspex")
}

const capitals = "../../../../examples/capitals"

// requireBrowserEnv makes a missing Chromium a failure rather than a skip
// (make test and CI set it).
const requireBrowserEnv = "DSPEX_REQUIRE_BROWSER"

// artifactsEnv names a folder for the tests' screenshots (default: the
// test's temporary folder); screenshotsEnv, a folder for the README's
// screenshots (make screenshots).
const (
	artifactsEnv   = "DSPEX_TEST_ARTIFACTS"
	screenshotsEnv = "DSPEX_DASHBOARD_SCREENSHOTS"
)

// browser starts headless Chromium for the test and returns its context.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv(requireBrowserEnv) != "" {
			t.Fatalf("no Chromium found (chromium, chromium-browser, google-chrome) and %s is set: run make setup-browser", requireBrowserEnv)
		}
		t.Skipf("no Chromium found: the browser tests need it (make setup-browser installs Debian's chromium; set %s=1 to make this a failure)", requireBrowserEnv)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.Flag("headless", true),
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	return ctx
}

// artifact returns where to save a test artifact named name.
func artifact(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// startMockLM runs `dspex mock-lm` as a real process on a free loopback
// port and returns its base URL; it is stopped at cleanup.
func startMockLM(t *testing.T, args ...string) string {
	t.Helper()
	return clitest.StartMockLM(t, dspexPath(t), args...)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// program writes a program file using the simulated LM at url.
func program(t *testing.T, url string) string {
	return writeFile(t, "p.yaml", "lm: {model: dspex-sim, base_url: \""+url+"\", api_key_env: DSPEX_TEST_UNSET}\nprogram: {module: predict, signature: \"question -> answer\"}\n")
}

// dspexCmd is a dspex command with its caches kept in the test's folders.
func dspexCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(dspexPath(t), args...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "XDG_STATE_HOME="+t.TempDir(), "DSPEX_DB=", "DSPEX_DASHBOARD_TOKEN=")
	return cmd
}
