package sandbox

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Report says whether a working sandbox can be created here and which
// protections it has.
type Report struct {
	// Available is true when a sandboxed command ran and saw what it
	// should (its uid, no network).
	Available bool `json:"available"`
	// Reason says why not, when !Available.
	Reason string `json:"reason,omitempty"`
	// Bwrap is bubblewrap's path and BwrapVersion its version line.
	Bwrap        string `json:"bwrap,omitempty"`
	BwrapVersion string `json:"bwrap_version,omitempty"`
	// Python is the interpreter checked, and Runtime its resolution
	// (nil when it failed): set it as Config.Runtime to skip resolving
	// the interpreter on later sandboxes.
	Python  string   `json:"python,omitempty"`
	Runtime *Runtime `json:"runtime,omitempty"`
	// UID is the uid the probe saw inside (65534 when all is well).
	UID int `json:"uid"`
	// Network is true when the probe saw any network interface but the
	// loopback (false when all is well).
	Network bool `json:"network"`
	// Protections are the layers that guard a sandbox here.
	Protections Protections `json:"protections"`
	// Duration is how long the probe took (a cold start).
	Duration time.Duration `json:"duration_ns"`
}

// checkScript reports the uid and the network interfaces inside.
const checkScript = `import json, os, socket
print(json.dumps({"uid": os.getuid(), "ifaces": [n for _, n in socket.if_nameindex()]}))`

// Check runs a trivial Python probe in a sandbox made from cfg (the zero
// Config checks the defaults) and reports what it found. It never
// returns an error: Report.Reason says what failed.
func Check(ctx context.Context, cfg Config) Report {
	var rep Report
	rep.Bwrap, rep.BwrapVersion = bwrapVersion(ctx)
	cfg.Timeout = 20 * time.Second
	if cfg.Runtime == nil && !cfg.Unsafe {
		py := cfg.Python
		if py == "" {
			py = DefaultPython
		}
		rt, err := ResolvePython(ctx, py)
		if err != nil {
			rep.Reason = err.Error()
			return rep
		}
		cfg.Runtime = &rt
	}
	rep.Runtime = cfg.Runtime
	res, c, err := run(ctx, cfg, nil, "python", "-I", "-c", checkScript)
	if c != nil {
		rep.Protections, rep.Python = c.Protections(), c.python
	}
	rep.Duration = res.Duration
	if err != nil {
		rep.Reason = strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": ")
		return rep
	}
	var seen struct {
		UID    int      `json:"uid"`
		Ifaces []string `json:"ifaces"`
	}
	if res.ExitCode != 0 || json.Unmarshal(res.Stdout, &seen) != nil {
		rep.Reason = "the probe failed: exit " + strconv.Itoa(res.ExitCode) + " " + res.KilledBy + ": " + firstLine(res.Stderr)
		return rep
	}
	rep.UID = seen.UID
	for _, n := range seen.Ifaces {
		if n != "lo" {
			rep.Network = true
		}
	}
	switch {
	case cfg.Unsafe:
		rep.Reason = "unsafe: no isolation"
	case rep.UID == 0:
		rep.Reason = "the probe ran as root inside the sandbox"
	case rep.Network:
		rep.Reason = "the probe saw network interfaces: " + strings.Join(seen.Ifaces, ", ")
	default:
		rep.Available = true
	}
	return rep
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
