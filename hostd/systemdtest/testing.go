package systemdtest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// startTimeout bounds how long Start waits for a new manager to answer.
const startTimeout = 30 * time.Second

// Start starts a user manager in a fresh temporary directory for the test and
// stops it when the test ends. Where the machine cannot run one (not root, no
// unshare) the test is skipped with the reason, unless CI=true, where that is
// a failure: CI runs as root and must exercise the real restart path. With
// ForServiceUsers the directory is in /var/lib, where sandboxed units see it.
func Start(t testing.TB, opts ...Option) *Manager {
	t.Helper()
	parent := ""
	if settingsOf(opts).serviceUsers {
		parent = "/var/lib"
	}
	// A short path: the bus socket lives below it and unix socket paths are
	// limited to 108 bytes, which t.TempDir's long names can exceed.
	dir, err := os.MkdirTemp(parent, "sdtest")
	if err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	m, err := StartUserManager(ctx, dir, opts...)
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: needs a real systemd user manager: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("%v", err)
		}
		if t.Failed() {
			t.Logf("systemd user manager output:\n%s", m.Output())
		}
	})
	return m
}
