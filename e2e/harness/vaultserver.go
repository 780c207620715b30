package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// How long a dev server may take to become ready, and to stop.
const (
	vaultStartTimeout = 90 * time.Second
	vaultStopTimeout  = 30 * time.Second
	startAttempts     = 3 // a free port can be taken between choosing and binding it
)

// Vault is a running Vault dev server (in-memory storage, unsealed) whose
// plugin directory is the run's binaries directory. It stops when the test
// that started it ends.
type Vault struct {
	Addr       string // http://127.0.0.1:<port>
	Token      string // root token, random for each server
	LogPath    string // the server log (its standard error)
	StdoutPath string // its standard output: the dev-mode banner, which prints the root token by design
	Home       string // HOME of the server and of CLI commands, so no real ~/.vault-token is read or written

	programs *Programs
	proc     *Process
}

// StartVault starts a Vault dev server for the test and waits until it serves
// requests with its root token.
func StartVault(t testing.TB, p *Programs) *Vault {
	t.Helper()
	p.Require(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "vault.hcl")
	if err := os.WriteFile(config, []byte("plugin_directory = "+strconv.Quote(p.Bin)+"\n"), 0o600); err != nil {
		t.Fatalf("writing the Vault config: %v", err)
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatalf("creating Vault's home: %v", err)
	}

	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		v := &Vault{
			Token:      "e2e-root-" + randomHex(t, 12),
			LogPath:    filepath.Join(dir, fmt.Sprintf("vault-%d.log", attempt)),
			StdoutPath: filepath.Join(dir, fmt.Sprintf("vault-%d.stdout", attempt)),
			Home:       home,
			programs:   p,
		}
		lastErr = v.start(t, config)
		if lastErr == nil {
			KeepSecret(t, "the Vault root token", v.Token)
			t.Cleanup(func() {
				v.stop(t)
				KeepFile(t, "the Vault server log of "+t.Name(), v.LogPath)
			})
			return v
		}
		if !v.portWasTaken() {
			break
		}
	}
	t.Fatalf("starting the Vault dev server: %v", lastErr)
	return nil
}

// start launches the server on a free port and waits until it is ready.
func (v *Vault) start(t testing.TB, config string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	v.Addr = "http://" + listen

	if err := v.launch("server", "-dev",
		"-dev-root-token-id="+v.Token,
		"-dev-listen-address="+listen,
		"-config="+config,
		"-log-level=debug",
	); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.Context(), vaultStartTimeout)
	defer cancel()
	if err := v.waitReady(ctx); err != nil {
		v.proc.Kill()
		return fmt.Errorf("%w\nlast lines of the server log:\n%s", err, v.logTail(30))
	}
	t.Logf("Vault dev server ready at %s (log %s)", v.Addr, v.LogPath)
	return nil
}

// launch starts `vault args...` as v's server process, in a process group of
// its own (its plugins run in it), with its standard error appended to
// v.LogPath and its standard output to v.StdoutPath.
func (v *Vault) launch(args ...string) error {
	logFile, err := os.OpenFile(v.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the server log: %w", err)
	}
	defer logFile.Close()
	stdoutFile, err := os.OpenFile(v.StdoutPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the server output file: %w", err)
	}
	defer stdoutFile.Close()

	cmd := exec.Command(v.programs.Vault, args...)
	cmd.Env = append(WithoutVaultEnv(os.Environ()), "HOME="+v.Home)
	cmd.Dir = v.Home
	cmd.Stdout = stdoutFile
	cmd.Stderr = logFile
	proc, err := StartProcess(cmd)
	if err != nil {
		return err
	}
	v.proc = proc
	return nil
}

// waitReady polls until the server answers healthy and accepts our root token
// (which proves the answer comes from this server, not another one that
// happens to listen on the port), the process exits, or ctx ends.
func (v *Vault) waitReady(ctx context.Context) error {
	return v.waitUntil(ctx, "ready", func(ctx context.Context, client *http.Client) bool {
		return v.status(ctx, client, "/v1/sys/health", "") == http.StatusOK &&
			v.status(ctx, client, "/v1/auth/token/lookup-self", v.Token) == http.StatusOK
	})
}

// waitUntil polls cond until it holds, the process exits, or ctx ends; what
// names the awaited state in the error.
func (v *Vault) waitUntil(ctx context.Context, what string, cond func(context.Context, *http.Client) bool) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond(ctx, client) {
			return nil
		}
		select {
		case <-v.proc.Exited():
			return fmt.Errorf("vault server exited before it was %s: %v", what, v.proc.Err())
		case <-ctx.Done():
			return fmt.Errorf("vault server not %s at %s: %w", what, v.Addr, ctx.Err())
		case <-tick.C:
		}
	}
}

// status returns the HTTP status of GET path, or 0 without an answer.
func (v *Vault) status(ctx context.Context, client *http.Client, path, token string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.Addr+path, nil)
	if err != nil {
		return 0
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Pause freezes the server and its plugins (SIGSTOP to its process group):
// the kernel still accepts connections on its port, but nothing answers, as
// with a hung or stopped Vault. Resume lets it go on; a server still paused
// when the test ends is resumed so that it can stop.
func (v *Vault) Pause(t testing.TB) {
	t.Helper()
	if err := v.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("pausing the Vault server: %v", err)
	}
	// The signal stops the server's threads asynchronously; one still
	// running could answer a request that follows Pause.
	poll.Within(t, 10*time.Second, time.Millisecond, "every thread of the Vault server to stop on SIGSTOP", func() (bool, string) {
		return allThreadsStopped(v.proc.Pid()), "a thread still runs"
	})
}

// allThreadsStopped reports whether every thread of pid is in state T
// (stopped by a signal), as /proc shows it.
func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses and
		// may itself contain spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) || stat[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Resume continues a server stopped by Pause (SIGCONT to its process group).
func (v *Vault) Resume(t testing.TB) {
	t.Helper()
	if err := v.proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("resuming the Vault server: %v", err)
	}
}

// stop ends the server gracefully (SIGTERM), then forcefully, and on a failed
// test shows the end of its log.
func (v *Vault) stop(t testing.TB) {
	if t.Failed() {
		t.Logf("last lines of the Vault server log %s:\n%s", v.LogPath, v.logTail(60))
	}
	if !v.proc.Stop(vaultStopTimeout) {
		t.Errorf("vault server did not stop within %s of SIGTERM; killed it", vaultStopTimeout)
	}
}

// portWasTaken reports whether the server failed because its port was in use.
func (v *Vault) portWasTaken() bool {
	out, _ := os.ReadFile(v.StdoutPath)
	log, _ := os.ReadFile(v.LogPath)
	return bytes.Contains(out, []byte("address already in use")) || bytes.Contains(log, []byte("address already in use"))
}

// ServerLog returns the server log so far.
func (v *Vault) ServerLog(t testing.TB) string {
	t.Helper()
	return readServerFile(t, "the Vault server log", v.LogPath)
}

// Stdout returns what the server printed on standard output so far.
func (v *Vault) Stdout(t testing.TB) string {
	t.Helper()
	return readServerFile(t, "the Vault server output", v.StdoutPath)
}

// readServerFile returns what the server has written to path so far; what
// names the file if it cannot be read, which fails the test.
func readServerFile(t testing.TB, what, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", what, err)
	}
	return string(data)
}

func (v *Vault) logTail(n int) string {
	data, err := os.ReadFile(v.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", v.LogPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreeLoopbackAddr returns a 127.0.0.1 address whose port was free a
// moment ago, for a program the test starts.
func FreeLoopbackAddr(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("finding a free port: not a TCP address")
	}
	return addr.Port, nil
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	return hex.EncodeToString(b)
}

// WithoutVaultEnv drops VAULT_* variables, so that the caller's own Vault
// settings never reach a program a test starts.
func WithoutVaultEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "VAULT_") {
			out = append(out, kv)
		}
	}
	return out
}
