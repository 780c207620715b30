package render

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"sync"
)

// levelPrefix matches consul-template's "[LEVEL] " at the start of a line.
var levelPrefix = regexp.MustCompile(`^\[(TRACE|DEBUG|INFO|WARN|ERR|ERROR)\] ?`)

// LogWriter returns a writer for the standard library's log package that
// passes consul-template's lines to logger at debug level. It drops TRACE
// lines and every line that contains anything token-like.
func LogWriter(logger *slog.Logger) io.Writer {
	return &stdLogWriter{logger: logger}
}

// CaptureStdLog sends the standard log package's output (consul-template
// logs through it) to logger via LogWriter, for the whole process, and
// returns a function that puts the previous output back. Call it once, when
// the daemon starts.
func CaptureStdLog(logger *slog.Logger) (restore func()) {
	prevOut, prevFlags, prevPrefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetOutput(LogWriter(logger))
	log.SetFlags(0)
	log.SetPrefix("")
	return func() {
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
		log.SetPrefix(prevPrefix)
	}
}

type stdLogWriter struct {
	logger *slog.Logger
	mu     sync.Mutex
	buf    []byte
}

// Write splits p into lines; a partial line waits for the rest.
func (w *stdLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.logLine(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a runaway line without newline
		w.logLine(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *stdLogWriter) logLine(line string) {
	line = strings.TrimSpace(line)
	if line == "" || tokenLike(line) {
		return
	}
	level := ""
	if m := levelPrefix.FindStringSubmatch(line); m != nil {
		level = m[1]
		line = line[len(m[0]):]
	}
	if level == "TRACE" {
		return
	}
	w.logger.LogAttrs(context.Background(), slog.LevelDebug, line, slog.String("ct_level", strings.ToLower(level)))
}
