package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/dspex/dspex/core/event"
)

// Bounds on what one log line may put on the bus.
const (
	maxLogMessage = 4096
	maxLogFields  = 32
	maxLogValue   = 1024
)

// logSink publishes the log lines of one plugin process on the bus.
type logSink struct {
	plugin string
	// stderrLogger is the name go-plugin gives the logger of the process's
	// stderr: lines logged through it come from the plugin.
	stderrLogger string
	level        hclog.Level
	pub          func(event.Kind, any)
}

// busLogger is the hclog.Logger handed to go-plugin: it publishes what it
// is given as event.PluginLog events instead of printing. Lines from the
// plugin's stderr (its hclog JSON lines, parsed by go-plugin, and any other
// text) are published at the sink's level and above; go-plugin's own
// messages about the process only from Warn up. Safe for concurrent use.
type busLogger struct {
	sink    *logSink
	name    string
	implied []any
}

var _ hclog.Logger = (*busLogger)(nil)

func (l *busLogger) Log(level hclog.Level, msg string, args ...any) {
	source := "host"
	if l.name == l.sink.stderrLogger || strings.HasPrefix(l.name, l.sink.stderrLogger+".") {
		source = "plugin"
	}
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if level < l.sink.level || (source == "host" && level < hclog.Warn) {
		return
	}
	entry := &event.PluginLogEntry{
		Plugin:  l.sink.plugin,
		Source:  source,
		Level:   level.String(),
		Logger:  l.name,
		Message: truncate(msg, maxLogMessage),
	}
	entry.Fields = logFields(l.implied, args)
	l.sink.pub(event.PluginLog, entry)
}

// logFields turns hclog's key/value pairs into JSON-ready fields, bounded.
func logFields(implied, args []any) map[string]any {
	all := append(append([]any(nil), implied...), args...)
	if len(all) == 0 {
		return nil
	}
	fields := make(map[string]any, min(len(all)/2+1, maxLogFields))
	for i := 0; i+1 < len(all) && len(fields) < maxLogFields; i += 2 {
		key := fmt.Sprint(all[i])
		// go-plugin adds the line's own timestamp; the event has one.
		if key == "timestamp" {
			continue
		}
		fields[key] = logValue(all[i+1])
	}
	if len(all)%2 == 1 && len(fields) < maxLogFields {
		fields["EXTRA_VALUE_AT_END"] = logValue(all[len(all)-1])
	}
	return fields
}

func logValue(v any) any {
	switch v := v.(type) {
	case nil, bool, int, int32, int64, uint, uint32, uint64, float32, float64:
		return v
	case string:
		return truncate(v, maxLogValue)
	case time.Duration:
		return v.String()
	case error:
		return truncate(v.Error(), maxLogValue)
	case fmt.Stringer:
		return truncate(v.String(), maxLogValue)
	}
	return truncate(fmt.Sprintf("%v", v), maxLogValue)
}

func (l *busLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *busLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *busLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *busLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *busLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *busLogger) IsTrace() bool { return l.sink.level <= hclog.Trace }
func (l *busLogger) IsDebug() bool { return l.sink.level <= hclog.Debug }
func (l *busLogger) IsInfo() bool  { return l.sink.level <= hclog.Info }
func (l *busLogger) IsWarn() bool  { return l.sink.level <= hclog.Warn }
func (l *busLogger) IsError() bool { return l.sink.level <= hclog.Error }

func (l *busLogger) ImpliedArgs() []any { return l.implied }

func (l *busLogger) With(args ...any) hclog.Logger {
	return &busLogger{sink: l.sink, name: l.name, implied: append(append([]any(nil), l.implied...), args...)}
}

func (l *busLogger) Name() string { return l.name }

func (l *busLogger) Named(name string) hclog.Logger {
	if l.name != "" {
		name = l.name + "." + name
	}
	return &busLogger{sink: l.sink, name: name, implied: l.implied}
}

func (l *busLogger) ResetNamed(name string) hclog.Logger {
	return &busLogger{sink: l.sink, name: name, implied: l.implied}
}

// SetLevel is ignored: the level is the sink's, fixed when the plugin is
// created.
func (l *busLogger) SetLevel(hclog.Level) {}

func (l *busLogger) GetLevel() hclog.Level { return l.sink.level }

func (l *busLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *busLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return &lineWriter{fn: func(line string) { l.Log(level, line) }}
}

// lineWriter calls fn with each complete line written to it; a line longer
// than maxLogMessage is cut there. Safe for concurrent use.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogMessage - len(w.buf)
			if len(p) > room {
				w.buf = append(w.buf, p[:room]...)
				w.flush()
				p = p[room:]
				continue
			}
			w.buf = append(w.buf, p...)
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) flush() {
	line := strings.TrimRight(string(w.buf), "\r")
	w.buf = w.buf[:0]
	if line != "" {
		w.fn(line)
	}
}

// stderrTail keeps the last lines a process wrote to stderr, to explain a
// failed start. hclog JSON lines are kept as their message. Safe for
// concurrent use.
type stderrTail struct {
	lineWriter
	tmu   sync.Mutex
	lines []string
	max   int
}

func newStderrTail(max int) *stderrTail {
	t := &stderrTail{max: max}
	t.fn = t.add
	return t
}

func (t *stderrTail) add(line string) {
	var entry struct {
		Message string `json:"@message"`
	}
	if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &entry) == nil && entry.Message != "" {
		line = entry.Message
	}
	t.tmu.Lock()
	defer t.tmu.Unlock()
	if len(t.lines) == t.max {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:t.max-1]
	}
	t.lines = append(t.lines, truncate(line, 512))
}

// String returns the kept lines joined with " | ", the last one last.
func (t *stderrTail) String() string {
	t.tmu.Lock()
	defer t.tmu.Unlock()
	return strings.Join(t.lines, " | ")
}
