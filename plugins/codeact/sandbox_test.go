package codeact_test

import (
	"testing"

	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/plugins/codeact/codeacttest"
	"github.com/dspex/dspex/sandbox"
)

// Where a sandbox can be created, the interpreter runs in it: uid 65534,
// the scratch directory as its working directory, no network, an empty
// environment but for the handshake's and the spec's, a read-only host.
func TestInterpreterRunsSandboxed(t *testing.T) {
	plugins := codeacttest.Plugins(t)
	if rep := sandbox.Check(t.Context(), sandbox.Config{Python: plugins.Python}); !rep.Available {
		t.Skipf("no sandbox can be created here (%s): the interpreter runs unsandboxed", rep.Reason)
	}
	pool := codeacttest.Pool(t, codeact.Config{Plugins: plugins})
	s, err := pool.NewSession(t.Context(), shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	obs, err := s.Execute(t.Context(), `import os, socket, json
def denied(f):
    try:
        f()
        return False
    except OSError:
        return True
SUBMIT(
    uid=os.getuid(), cwd=os.getcwd(),
    ifaces=[n for _, n in socket.if_nameindex()],
    env=sorted(k for k in os.environ if not k.startswith("PLUGIN_")),
    shadow=denied(lambda: open("/etc/shadow").read()),
    write_usr=denied(lambda: open("/usr/dspex-test", "w")),
    scratch=not denied(lambda: open("scratch-file", "w").write("ok")),
    tool=price("apple"),
)`)
	if err != nil || obs.Error != nil {
		t.Fatalf("%+v, %v", obs, err)
	}
	got := obs.Outputs.Map()
	if got["uid"] != int64(sandbox.UID) || got["cwd"] != sandbox.Scratch || got["tool"] != int64(3) || len(got["ifaces"].([]any)) > 1 {
		t.Errorf("inside the sandbox: %v", got)
	}
	if got["shadow"] != true || got["write_usr"] != true || got["scratch"] != true {
		t.Errorf("file access inside the sandbox: %v", got)
	}
	for _, k := range got["env"].([]any) {
		switch k {
		case "DSPEX_PLUGIN_MAGIC_COOKIE", "PYTHONPATH", "PYTHONUNBUFFERED", "HOME", "PATH", "TMPDIR", "PWD", "LC_CTYPE", "LANG":
		default:
			t.Errorf("host variable %v inside the sandbox", k)
		}
	}
}

// The hostile suite (hostile_test.go) runs issue 13's hostile code through a
// pool of sandboxed interpreters.
