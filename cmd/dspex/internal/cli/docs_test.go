package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The docs test runs every command that README.md and docs/*.md show, so that
// the documentation cannot drift from the code.
//
// Conventions the documents follow (docs/architecture.md says so too):
//   - A fenced block marked sh, bash, shell or console holds commands to run.
//     In a console block only lines starting with "$ " are commands; the
//     others are output. Lines whose first word is dspex, bin/dspex or curl
//     run (after optional VAR=value prefixes); others (make, pip, go) are
//     run by CI itself or need the network, and are not run here.
//   - A usage synopsis ("dspex run --program FILE [--state FILE]") goes in an
//     unmarked block, output in a text block. A line of an unmarked block
//     that starts with dspex must look like a synopsis (brackets, a | or an
//     upper-case placeholder), so a runnable-looking command cannot hide
//     from this test.
//   - mock-lm, serve and dashboard are servers: each is started and awaited
//     until it prints "listening on". One that ends in & stays up until the
//     document ends (later commands use it); one shown in the foreground is
//     stopped at once, as a reader would with Ctrl-C.
//   - A trailing "# exits N" comment states an expected non-zero exit code.
//
// Each document (README.md, docs/*.md, examples/*/README.md) runs in its own
// scratch directory (holding the repository's examples/ and testdata/ and
// bin/dspex), with its own cache and trace database, and with a simulated LM
// started for it. The addresses 127.0.0.1:8089 (the simulator) and
// 127.0.0.1:8080 (serve) in the documents are replaced by free loopback
// ports, and DSPEX_LM_BASE_URL points at the document's simulator.

// docCommand is one runnable command of a document.
type docCommand struct {
	file   string
	line   int
	text   string // the shell text, continuation lines joined
	server bool   // a long-running command: started, awaited, stopped
	bg     bool   // ended in &: it stays up until the document ends
	exit   int
}

var (
	fenceRE     = regexp.MustCompile("^\\s*```\\s*([A-Za-z0-9_-]*)")
	envPrefixRE = regexp.MustCompile(`^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*`)
	exitsRE     = regexp.MustCompile(`#\s*exits\s+(\d+)\s*$`)
	commentRE   = regexp.MustCompile(`\s+#[^'"]*$`)
	synopsisRE  = regexp.MustCompile(`\[|\||\b[A-Z][A-Z_.]*[A-Z]\b`)
)

var serverCommands = map[string]bool{"mock-lm": true, "serve": true, "dashboard": true}

// docFiles lists README.md, every Markdown file under docs/ and the
// examples' READMEs.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{filepath.Join(root, "README.md")}
	for _, pattern := range []string{"docs/*.md", "examples/*/README.md"} {
		more, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, more...)
	}
	return files
}

// parseDocCommands extracts the commands of one Markdown document. It returns
// an error for a dspex line in an unmarked block that is not a synopsis.
func parseDocCommands(name string, r io.Reader) ([]docCommand, error) {
	var (
		cmds    []docCommand
		inFence bool
		lang    string
		pending strings.Builder
		start   int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			if inFence {
				inFence = false
			} else {
				inFence, lang = true, strings.ToLower(m[1])
			}
			continue
		}
		if !inFence {
			continue
		}
		runnable := lang == "sh" || lang == "bash" || lang == "shell" || lang == "console"
		if !runnable {
			trimmed := strings.TrimPrefix(strings.TrimSpace(line), "$ ")
			if lang == "" && isDspexLine(trimmed) && !synopsisRE.MatchString(trimmed) {
				return nil, fmt.Errorf("%s:%d: a runnable-looking dspex command in a %q block; put commands in a sh block and usage in a plain one: %s", name, n, lang, trimmed)
			}
			continue
		}
		text := strings.TrimSpace(line)
		if pending.Len() == 0 {
			if lang == "console" {
				if !strings.HasPrefix(text, "$ ") {
					continue
				}
				text = strings.TrimPrefix(text, "$ ")
			}
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			start = n
		}
		if strings.HasSuffix(text, `\`) {
			pending.WriteString(strings.TrimSpace(strings.TrimSuffix(text, `\`)))
			pending.WriteString(" ")
			continue
		}
		pending.WriteString(text)
		full := pending.String()
		pending.Reset()
		if !isDspexLine(full) && !strings.HasPrefix(strings.TrimPrefix(full, envPrefixRE.FindString(full)), "curl ") {
			continue
		}
		c := docCommand{file: name, line: start}
		if m := exitsRE.FindStringSubmatch(full); m != nil {
			c.exit, _ = strconv.Atoi(m[1])
		}
		full = strings.TrimSpace(commentRE.ReplaceAllString(full, ""))
		if strings.HasSuffix(full, "&") {
			c.server, c.bg = true, true
			full = strings.TrimSpace(strings.TrimSuffix(full, "&"))
		}
		if f := strings.Fields(strings.TrimPrefix(full, envPrefixRE.FindString(full))); len(f) > 1 && isDspexWord(f[0]) && serverCommands[f[1]] {
			c.server = true
		}
		c.text = full
		cmds = append(cmds, c)
	}
	return cmds, sc.Err()
}

func isDspexWord(w string) bool { return w == "dspex" || w == "bin/dspex" || w == "./bin/dspex" }

func isDspexLine(s string) bool {
	f := strings.Fields(strings.TrimPrefix(s, envPrefixRE.FindString(s)))
	return len(f) > 0 && isDspexWord(f[0])
}

func TestParseDocCommands(t *testing.T) {
	doc := "text\n```\ndspex run --program FILE [--state FILE]\n```\n" +
		"```sh\n# a comment\nbin/dspex mock-lm --addr 127.0.0.1:8089 &   # the simulator\n" +
		"dspex run --program p.yaml \\\n   --input '{\"q\": 1}'\nmake demo\n" +
		"FOO=1 dspex eval --data x.jsonl   # exits 2\ncurl -s http://127.0.0.1:8080/healthz\n```\n" +
		"```console\n$ dspex cache stats\nentries: 3\n```\n"
	cmds, err := parseDocCommands("doc.md", strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []docCommand{
		{file: "doc.md", line: 7, text: "bin/dspex mock-lm --addr 127.0.0.1:8089", server: true, bg: true},
		{file: "doc.md", line: 8, text: `dspex run --program p.yaml --input '{"q": 1}'`},
		{file: "doc.md", line: 11, text: "FOO=1 dspex eval --data x.jsonl", exit: 2},
		{file: "doc.md", line: 12, text: "curl -s http://127.0.0.1:8080/healthz"},
		{file: "doc.md", line: 15, text: "dspex cache stats"},
	}
	if len(cmds) != len(want) {
		t.Fatalf("got %d commands, want %d: %+v", len(cmds), len(want), cmds)
	}
	for i := range want {
		if cmds[i] != want[i] {
			t.Errorf("command %d = %+v, want %+v", i, cmds[i], want[i])
		}
	}
	if _, err := parseDocCommands("bad.md", strings.NewReader("```\ndspex run --program examples/qa/program.yaml\n```\n")); err == nil {
		t.Error("a runnable command in a plain block was accepted")
	}
}

// TestDocsCommandsRun runs every command README.md and docs/ show.
func TestDocsCommandsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every documented command")
	}
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, path := range docFiles(t, root) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		cmds, err := parseDocCommands(rel, f)
		f.Close()
		if err != nil {
			t.Error(err)
			continue
		}
		if len(cmds) == 0 {
			continue
		}
		total += len(cmds)
		t.Run(rel, func(t *testing.T) { runDocCommands(t, root, cmds) })
	}
	if total < 10 {
		t.Fatalf("found only %d documented commands; the parser lost them", total)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func runDocCommands(t *testing.T, root string, cmds []docCommand) {
	work := t.TempDir()
	for _, name := range []string{"examples", "testdata"} {
		if err := os.Symlink(filepath.Join(root, name), filepath.Join(work, name)); err != nil {
			t.Fatal(err)
		}
	}
	binDir := filepath.Join(work, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dspexBin, filepath.Join(binDir, "dspex")); err != nil {
		t.Fatal(err)
	}
	// The test's simulator answers until the document starts its own on
	// 127.0.0.1:8089 in the background; from then on DSPEX_LM_BASE_URL points
	// there. The two get different ports, so a document may also show
	// mock-lm in the foreground.
	docSim, ownSim, serveAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	replacer := strings.NewReplacer("127.0.0.1:8089", docSim, "localhost:8089", docSim,
		"127.0.0.1:8080", serveAddr, "localhost:8080", serveAddr)
	simAddr := ownSim
	env := append(os.Environ(),
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"XDG_CACHE_HOME="+filepath.Join(work, ".cache"),
		"XDG_STATE_HOME="+filepath.Join(work, ".state"),
		"HOME="+work,
		"DSPEX_DB=",
		"DSPEX_LM_BASE_URL=http://"+simAddr+"/v1",
	)
	// The plugin guide has the reader export DSPEX_PYTHON; the checkout's
	// virtualenv (make setup) stands in for the one it creates.
	if py := filepath.Join(root, ".venv", "bin", "python"); fileExists(py) {
		env = append(env, "DSPEX_PYTHON="+py)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	startDocServer(ctx, t, work, env, docCommand{text: "dspex mock-lm --addr " + ownSim, server: true, bg: true})
	for _, c := range cmds {
		c.text = replacer.Replace(c.text)
		if c.server {
			stop := startDocServer(ctx, t, work, env, c)
			if !c.bg {
				stop()
			} else if strings.Contains(c.text, "mock-lm") && strings.Contains(c.text, docSim) {
				env = append(env, "DSPEX_LM_BASE_URL=http://"+docSim+"/v1") // the last one counts
			}
			continue
		}
		out, code := runDocShell(ctx, t, work, env, c.text)
		if code != c.exit {
			t.Errorf("%s:%d: %s\nexited %d, want %d; output:\n%s", c.file, c.line, c.text, code, c.exit, out)
		}
	}
}

// runDocShell runs one command with bash, as a reader pasting it would.
func runDocShell(ctx context.Context, t *testing.T, dir string, env []string, text string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", text)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin = strings.NewReader("")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %q: %v", text, err)
	}
	return out.String(), 0
}

// startDocServer starts a server command and waits until it says where it
// listens. It is stopped with SIGTERM (its whole process group) by the
// returned function, or at cleanup.
func startDocServer(ctx context.Context, t *testing.T, dir string, env []string, c docCommand) (stop func()) {
	t.Helper()
	cmd := exec.Command("bash", "-c", "exec "+c.text)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s:%d: start %q: %v", c.file, c.line, c.text, err)
	}
	var out bytes.Buffer
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !seen && strings.Contains(sc.Text(), "listening on") {
				seen = true
				ready <- true
			}
		}
		if !seen {
			ready <- false
		}
	}()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
	}
	t.Cleanup(stop)
	select {
	case ok := <-ready:
		if !ok {
			<-done
			t.Fatalf("%s:%d: %s\nexited before listening:\n%s", c.file, c.line, c.text, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s:%d: %s\ndid not say where it listens in 30s", c.file, c.line, c.text)
	case <-ctx.Done():
	}
	return stop
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

var (
	helpFlagRE = regexp.MustCompile(`^\s+(?:-([a-zA-Z]), )?--([a-z][a-z0-9-]*)`)
	docFlagRE  = regexp.MustCompile(`(?:^|[\s\[(|])--?([a-z][a-z0-9-]*)`)
)

// commonFlags are what docs/cli.md calls "common flags": dspex run's flags
// for the cache, usage and observability, which eval, optimize and serve take
// too.
var commonFlags = []string{"cache", "no-cache", "quiet", "db", "no-traces", "traces-optional",
	"log-level", "log-json", "no-progress"}

// TestCLIDocSynopses checks every usage synopsis in docs/cli.md against the
// command's own --help: no documented flag is missing from the command, and
// no flag of the command is missing from its synopsis.
func TestCLIDocSynopses(t *testing.T) {
	b, err := os.ReadFile("../../../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	synopses := map[string]map[string]bool{} // command path → flags shown
	var current string
	inFence, lang := false, ""
	for _, line := range strings.Split(string(b), "\n") {
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			inFence, lang = !inFence, m[1]
			current = ""
			continue
		}
		if !inFence || lang != "" {
			continue
		}
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "dspex ") {
			var path []string
			for _, w := range strings.Fields(trimmed)[1:] {
				if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") || strings.HasPrefix(w, "(") || strings.ToUpper(w) == w {
					break
				}
				path = append(path, w)
			}
			current = strings.Join(path, " ")
			if synopses[current] == nil {
				synopses[current] = map[string]bool{}
			}
		}
		if current == "" {
			continue
		}
		for _, m := range docFlagRE.FindAllStringSubmatch(line, -1) {
			synopses[current][m[1]] = true
		}
		if strings.Contains(line, "common flags") {
			for _, f := range commonFlags {
				synopses[current][f] = true
			}
		}
	}
	if len(synopses) < 10 {
		t.Fatalf("found only %d synopses in docs/cli.md", len(synopses))
	}
	for path, shown := range synopses {
		args := append(strings.Fields(path), "--help")
		out, _, code := runDspex(t, nil, args...)
		if code != 0 {
			t.Errorf("dspex %s: exit %d", strings.Join(args, " "), code)
			continue
		}
		real := map[string]bool{}    // long names
		short := map[string]string{} // short → long
		inFlags := false
		for _, l := range strings.Split(out, "\n") {
			if strings.HasSuffix(l, "Flags:") { // Flags: and Global Flags:
				inFlags = true
				continue
			}
			if inFlags && strings.TrimSpace(l) == "" {
				inFlags = false
			}
			if m := helpFlagRE.FindStringSubmatch(l); inFlags && m != nil {
				real[m[2]] = true
				if m[1] != "" {
					short[m[1]] = m[2]
				}
			}
		}
		for s, long := range short {
			if shown[s] {
				shown[long] = true
				delete(shown, s)
			}
		}
		for f := range shown {
			if !real[f] {
				t.Errorf("docs/cli.md shows flag --%s for dspex %s, which has no such flag", f, path)
			}
		}
		for f := range real {
			if f != "help" && !shown[f] {
				t.Errorf("dspex %s has flag --%s, which its synopsis in docs/cli.md leaves out", path, f)
			}
		}
	}
}
