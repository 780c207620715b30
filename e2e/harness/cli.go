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

func (v *Vault) run(t testing.TB, cmd *exec.Cmd, dir, display string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd.Dir = dir
	cmd.Env = v.CLIEnv()
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %q: %v", display, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%q did not finish within %s", display, cliTimeout)
	}

	r := Result{Command: display, Dir: dir, Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("running %q: %v", display, err)
	}
	t.Logf("$ %s  -> exit %d", display, r.ExitCode)
	return r
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
