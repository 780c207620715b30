// Command usermanager runs a real systemd user manager for the demo on a
// machine whose PID 1 is not systemd, using hostd/systemdtest: the manager
// lives in a private mount namespace with its runtime and unit directories
// under -dir. Once the manager answers on its bus, usermanager writes the
// environment that reaches it (XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS,
// XDG_CONFIG_HOME) to -env-file, when given, as shell assignments, prints the
// same lines, and stays in the foreground until SIGINT or SIGTERM; then it
// stops the manager, which stops its units first. It needs root. It owns
// only that manager and -env-file.
//
//	usermanager -dir DIR [-env-file FILE]
//
// Exit status: 0 after a clean stop; 2 on a usage error or when this machine
// cannot run a user manager (the message says what is missing); 1 on any other failure,
// including the manager exiting on its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
)

// startTimeout bounds the wait for a new manager to answer on its bus.
const startTimeout = 30 * time.Second

// exitUnavailable is the exit status when the machine cannot run a manager.
const exitUnavailable = 2

func main() {
	dir := flag.String("dir", "", "directory for the manager's runtime and unit directories (short path; created if missing)")
	envFile := flag.String("env-file", "", "where to write the manager's environment as shell assignments")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: usermanager -dir DIR [-env-file FILE]")
		os.Exit(exitUnavailable)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop() // still catching signals while the manager stops
	if err := run(ctx, *dir, *envFile, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "usermanager:", err)
		if errors.Is(err, systemdtest.ErrUnavailable) {
			os.Exit(exitUnavailable)
		}
		os.Exit(1)
	}
}

// run starts the manager, publishes its environment and keeps it until ctx
// ends, then stops it.
func run(ctx context.Context, dir, envFile string, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("manager directory: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	m, err := systemdtest.StartUserManager(startCtx, dir)
	cancel()
	if err != nil {
		return err
	}
	// XDG_CONFIG_HOME too, so that systemctl --user link and enable write
	// into this manager's unit directory, not the caller's home.
	env := shellAssignments(append(m.Env(), "XDG_CONFIG_HOME="+m.ConfigDir()))
	if envFile != "" {
		if err := writeAtomically(envFile, env); err != nil {
			return errors.Join(err, m.Stop())
		}
	}
	fmt.Fprint(out, env)

	select {
	case <-ctx.Done():
		if err := m.Stop(); err != nil {
			return fmt.Errorf("stopping the user manager: %w", err)
		}
		return nil
	case <-m.Done():
		_ = m.Stop() // reaps it and removes its cgroups
		return fmt.Errorf("the user manager exited on its own; its output:\n%s", m.Output())
	}
}

// shellAssignments turns KEY=value pairs into lines a shell can source.
func shellAssignments(env []string) string {
	var b strings.Builder
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "%s=%s\n", name, shellQuote(value))
	}
	return b.String()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeAtomically writes content to path through a rename, so a reader
// waiting for the file never sees half of it.
func writeAtomically(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write environment file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write environment file: %w", err)
	}
	return nil
}
