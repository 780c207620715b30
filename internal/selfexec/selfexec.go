// Package selfexec lets a command's tests run the command's real main in a
// process of its own, so that its signal handling, exit status and standard
// streams are tested for real: the test binary doubles as the command when
// the process was started by Start (Main sees the variable Start sets).
//
// It owns only the processes its Start begins; each is killed, if still
// running, when the test that started it ends. It is for tests.
package selfexec

import (
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
)

// runMainEnv is set in the environment of a process Start begins: there the
// test binary runs the command's main instead of its tests.
const runMainEnv = "SIGSCI_KEYS_TEST_RUN_MAIN"

// Main is the body of a command's TestMain. In a process begun by Start it
// runs main, and exits 0 if main returns; otherwise it runs the tests.
//
//	func TestMain(m *testing.M) { selfexec.Main(m, main) }
func Main(m *testing.M, main func()) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Process is the test binary running as the command.
type Process struct {
	Cmd    *exec.Cmd
	Stderr *logbuf.Buffer // everything the process wrote to standard error

	exited chan struct{} // closed once the process has exited; err is set
	err    error
}

// Options are what Start gives the process beside its arguments.
type Options struct {
	Env    []string  // added to the test's environment
	Stdout io.Writer // the process's standard output; nil discards it
}

// Start runs the command's main with args in a process of its own. When the
// test ends the process is killed if still running, and its standard error
// is logged if the test failed.
func Start(t testing.TB, opts Options, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), runMainEnv+"=1"), opts.Env...)
	cmd.Stdout = opts.Stdout
	p := &Process{Cmd: cmd, Stderr: &logbuf.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s as the command: %v", os.Args[0], err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once it has exited
		<-p.exited
		if t.Failed() {
			t.Logf("the command (pid %d) wrote to standard error:\n%s", cmd.Process.Pid, p.Stderr.String())
		}
	})
	return p
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling the command: %v", err)
	}
}

// Wait waits for the process to exit after what (say "SIGTERM") and returns
// how it ended, Cmd.Wait's error; it fails the test if the process is still
// running after within.
func (p *Process) Wait(t testing.TB, what string, within time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		t.Fatalf("the command did not exit within %s of %s; standard error:\n%s", within, what, p.Stderr.String())
		return nil
	}
}
