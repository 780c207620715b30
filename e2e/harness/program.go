package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// interruptGrace is how long RunProgram lets the body wind down after a
// signal before it runs the cleanups anyway.
const interruptGrace = 15 * time.Second

// RunProgram runs body as the main work of a program outside `go test` (such
// as make bench), so that it can use this package's helpers. The testing.TB it
// passes logs to standard error, fails with Fatal (which ends body, as in a
// test), treats a skip as a failure (the program could not do its work), and
// runs the registered cleanups, last first, when body ends.
//
// SIGINT and SIGTERM cancel t.Context(); the cleanups run once body returns,
// or after a grace period if it does not, so that the servers a run started
// (Vault runs in a process group of its own, out of reach of the terminal's
// Ctrl-C) are stopped and its temporary directories removed. Further signals
// are ignored while cleaning up. It returns the exit code: 0 when body
// neither failed nor skipped, 1 otherwise.
func RunProgram(name string, body func(t testing.TB)) int {
	return runProgram(name, os.Stderr, body)
}

func runProgram(name string, out io.Writer, body func(t testing.TB)) int {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	t := newProgramTB(ctx, name, &logOutput{w: out})

	done := t.start(func() { body(t) })
	select {
	case <-done:
	case <-ctx.Done():
		t.Logf("interrupted: stopping everything this run started")
		select {
		case <-done:
		case <-time.After(interruptGrace):
			t.Logf("still busy %s after the interrupt: cleaning up anyway", interruptGrace)
		}
	}
	t.finish()
	if ctx.Err() != nil || t.Failed() || t.Skipped() {
		return 1
	}
	return 0
}

// programTB is the testing.TB of RunProgram. The embedded interface is nil:
// it only supplies the unexported method that keeps testing.TB closed; every
// exported method is defined below.
type programTB struct {
	testing.TB

	name   string
	ctx    context.Context
	cancel context.CancelFunc
	out    *logOutput // shared with the steps

	mu       sync.Mutex
	failed   bool
	skipped  bool
	cleanups []func()
	tempRoot string
	tempSeq  int
}

// logOutput serializes the lines of a program and its steps.
type logOutput struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

func newProgramTB(parent context.Context, name string, out *logOutput) *programTB {
	ctx, cancel := context.WithCancel(parent)
	return &programTB{name: name, ctx: ctx, cancel: cancel, out: out}
}

// finish cancels the context, as testing does before cleanups, then runs
// the cleanups last first.
func (t *programTB) finish() {
	t.cancel()
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		t.runCleanup(f)
	}
}

// runCleanup runs one cleanup; a Fatal inside it ends only that cleanup.
func (t *programTB) runCleanup(f func()) { <-t.start(f) }

// start runs f in a goroutine of its own, so that FailNow (runtime.Goexit)
// ends f alone, and reports a panic as a failure. The channel closes when f
// has ended.
func (t *programTB) start(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		f()
	}()
	return done
}

// Step runs f as one step of t, with cleanups of its own that run as soon as
// f returns, so that a long program stops each step's servers and removes its
// directories before the next step starts. Under go test it is t.Run. A step
// that fails (or skips, outside go test) fails t and ends it, as Fatal does.
func Step(t testing.TB, name string, f func(t testing.TB)) {
	t.Helper()
	switch p := t.(type) {
	case *testing.T:
		if !p.Run(name, func(t *testing.T) { f(t) }) {
			p.FailNow()
		}
	case *programTB:
		p.step(name, f)
	default:
		t.Fatalf("harness.Step: unsupported testing.TB %T", t)
	}
}

func (t *programTB) step(name string, f func(t testing.TB)) {
	child := newProgramTB(t.ctx, t.name+"/"+name, t.out)
	// If the program is interrupted while f hangs, the program's own cleanup
	// still stops what the step started.
	t.Cleanup(child.finish)
	<-child.start(func() { f(child) })
	child.finish()
	if child.Failed() || child.Skipped() {
		t.FailNow()
	}
}

func (t *programTB) Name() string             { return t.name }
func (t *programTB) Context() context.Context { return t.ctx }
func (t *programTB) Output() io.Writer        { return t.out }
func (t *programTB) Helper()                  {}

func (t *programTB) Log(args ...any) { t.write(fmt.Sprintln(args...)) }
func (t *programTB) Logf(format string, args ...any) {
	t.write(fmt.Sprintf(format, args...))
}

func (t *programTB) write(msg string) {
	msg = strings.TrimRight(msg, "\n")
	fmt.Fprintf(t.out, "%s: %s\n", t.name, strings.ReplaceAll(msg, "\n", "\n    "))
}

func (t *programTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

func (t *programTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *programTB) FailNow() {
	t.Fail()
	runtime.Goexit()
}

func (t *programTB) Error(args ...any) { t.Log(args...); t.Fail() }
func (t *programTB) Errorf(format string, args ...any) {
	t.Logf(format, args...)
	t.Fail()
}
func (t *programTB) Fatal(args ...any) { t.Log(args...); t.FailNow() }
func (t *programTB) Fatalf(format string, args ...any) {
	t.Logf(format, args...)
	t.FailNow()
}

func (t *programTB) SkipNow() {
	t.mu.Lock()
	t.skipped = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *programTB) Skipped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.skipped
}

func (t *programTB) Skip(args ...any) { t.Log(args...); t.SkipNow() }
func (t *programTB) Skipf(format string, args ...any) {
	t.Logf(format, args...)
	t.SkipNow()
}

func (t *programTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// TempDir returns a new directory under one root that the last cleanup
// removes.
func (t *programTB) TempDir() string {
	t.mu.Lock()
	if t.tempRoot == "" {
		root, err := os.MkdirTemp("", strings.ReplaceAll(t.name, "/", "-")+"-")
		if err != nil {
			t.mu.Unlock()
			t.Fatalf("creating a temporary directory: %v", err)
		}
		t.tempRoot = root
		t.cleanups = append([]func(){func() { removeAll(t, root) }}, t.cleanups...)
	}
	t.tempSeq++
	dir := fmt.Sprintf("%s/%03d", t.tempRoot, t.tempSeq)
	t.mu.Unlock()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("creating a temporary directory: %v", err)
	}
	return dir
}

// ArtifactDir has nowhere to keep artifacts: it is a temporary directory.
func (t *programTB) ArtifactDir() string { return t.TempDir() }

func (t *programTB) Attr(key, value string) { t.Logf("%s: %s", key, value) }

func (t *programTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	if err := os.Setenv(key, value); err != nil {
		t.Fatalf("setting %s: %v", key, err)
	}
	t.Cleanup(func() {
		if had {
			_ = os.Setenv(key, old)
		} else {
			_ = os.Unsetenv(key)
		}
	})
}

func (t *programTB) Chdir(dir string) {
	old, err := os.Getwd()
	if err != nil {
		t.Fatalf("chdir: %v", err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatalf("chdir: %v", err)
	}
	t.Cleanup(func() { _ = os.Chdir(old) })
}

func removeAll(t *programTB, dir string) {
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("removing %s: %v", dir, err)
	}
}
