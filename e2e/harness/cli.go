package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliTimeout bounds one CLI command.
const cliTimeout = 2 * time.Minute

// Result is what a command printed and how it exited.
type Result struct {
	Command  string
	Dir      string
	Stdout   string
	Stderr   string
	ExitCode int
}

// String shows the command and everything it printed, for failure messages.
func (r Result) String() string {
	return fmt.Sprintf("$ %s   (in %s, exit %d)\n--- stdout:\n%s--- stderr:\n%s", r.Command, r.Dir, r.ExitCode, r.Stdout, r.Stderr)
}

// OK fails the test unless the command exited 0, and returns its stdout.
func (r Result) OK(t testing.TB) string {
	t.Helper()
	if r.ExitCode != 0 {
		t.Fatalf("command failed:\n%s", r)
	}
	return r.Stdout
}

// Refused fails the test unless the command exited non-zero, and returns its
// stderr, where the CLI prints the error.
func (r Result) Refused(t testing.TB) string {
	t.Helper()
	if r.ExitCode == 0 {
		t.Fatalf("command succeeded, want it refused:\n%s", r)
	}
	return r.Stderr
}

// MustContain fails the test unless text (what a command printed, named by
// what) contains every one of wants.
func MustContain(t testing.TB, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Fatalf("%s does not contain %q:\n%s", what, want, text)
		}
	}
}

// Run runs the vault CLI with args in dir, as the root token against this
// server.
func (v *Vault) Run(t testing.TB, dir string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(v.programs.Vault, args...)
	return v.run(t, cmd, dir, "vault "+strings.Join(args, " "))
}

// Shell runs script with sh -c in dir, as an operator's shell would: the
// vault binary is first on PATH, and VAULT_ADDR and VAULT_TOKEN point at this
// server with the root token. Use it to run documented commands verbatim.
func (v *Vault) Shell(t testing.TB, dir, script string) Result {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	return v.run(t, cmd, dir, script)
}

// ShellQuietly runs script like Shell but leaves it out of the test log: for
// a command a test runs again and again while it waits, whose wait says
// once what it runs. A failure still shows the command and all it printed.
func (v *Vault) ShellQuietly(t testing.TB, dir, script string) Result {
	t.Helper()
	r := v.begin(t, exec.Command("sh", "-c", script), dir, script)
	r.quiet = true
	return r.Wait(t)
}

// StartShell starts script like Shell and returns at once, for a command
// that a test interrupts (by stopping the server, say) while it runs. Wait
// returns its result; a command never waited for is killed when the test ends.
func (v *Vault) StartShell(t testing.TB, dir, script string) *Running {
	t.Helper()
	r := v.begin(t, exec.Command("sh", "-c", script), dir, script)
	t.Cleanup(r.proc.Kill) // with what the script started; at once if it has exited
	return r
}

// Running is a CLI command started by StartShell.
type Running struct {
	display, dir   string
	proc           *Process
	stdout, stderr bytes.Buffer
	deadline       time.Time
	quiet          bool // Wait logs nothing (ShellQuietly)
}

func (v *Vault) run(t testing.TB, cmd *exec.Cmd, dir, display string) Result {
	t.Helper()
	return v.begin(t, cmd, dir, display).Wait(t)
}

func (v *Vault) begin(t testing.TB, cmd *exec.Cmd, dir, display string) *Running {
	t.Helper()
	r := &Running{display: display, dir: dir, deadline: time.Now().Add(cliTimeout)}
	cmd.Dir = dir
	cmd.Env = v.CLIEnv()
	cmd.Stdout = &r.stdout
	cmd.Stderr = &r.stderr
	// A process group of its own: a kill reaches what a script started,
	// which would otherwise hold the output open and the wait with it.
	proc, err := StartProcess(cmd)
	if err != nil {
		t.Fatalf("%q: %v", display, err)
	}
	r.proc = proc
	return r
}

// Wait waits for the command to exit and returns what it printed; it fails
// the test if the command runs longer than cliTimeout in all.
func (r *Running) Wait(t testing.TB) Result {
	t.Helper()
	ctx, cancel := context.WithDeadline(t.Context(), r.deadline)
	defer cancel()
	select {
	case <-r.proc.Exited():
	case <-ctx.Done():
		r.proc.Kill()
		t.Fatalf("%q did not finish within %s", r.display, cliTimeout)
	}

	res := Result{Command: r.display, Dir: r.dir, Stdout: r.stdout.String(), Stderr: r.stderr.String()}
	var exitErr *exec.ExitError
	switch err := r.proc.Err(); {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("running %q: %v", r.display, err)
	}
	if !r.quiet {
		t.Logf("$ %s  -> exit %d", r.display, res.ExitCode)
	}
	return res
}

// CLIEnv is the environment of CLI commands: the caller's, without its VAULT_*
// settings, plus this server's address and root token, a private HOME, and
// the vault binary first on PATH.
func (v *Vault) CLIEnv() []string {
	return append(WithoutVaultEnv(os.Environ()),
		"VAULT_ADDR="+v.Addr,
		"VAULT_TOKEN="+v.Token,
		"HOME="+v.Home,
		"PATH="+filepath.Dir(v.programs.Vault)+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
}
