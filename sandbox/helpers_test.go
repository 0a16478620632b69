package sandbox

import (
	"os"
	"testing"
)

// testPython is the interpreter the tests sandbox: $DSPEX_SANDBOX_TEST_PYTHON,
// else the system python3 (the hostile suite's reference), else python3
// on $PATH.
func testPython(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("DSPEX_SANDBOX_TEST_PYTHON"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}
