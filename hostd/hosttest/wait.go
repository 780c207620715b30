package hosttest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/status"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// WaitTimeout bounds every wait of a host story: a render, a restart, a
// status answer.
const WaitTimeout = 30 * time.Second

// ReadFile returns what the file at path holds; the test fails when it
// cannot be read.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// WaitFile waits until the file at path holds want.
func WaitFile(t testing.TB, path, want string) {
	t.Helper()
	poll.Within(t, WaitTimeout, 20*time.Millisecond, fmt.Sprintf("%s to hold %q", path, want), func() (bool, string) {
		got, err := os.ReadFile(path)
		return err == nil && string(got) == want, fmt.Sprintf("%q, %v", got, err)
	})
}

// WaitStatus asks hostd's status socket until it answers with a snapshot
// for which ok holds, and returns that snapshot.
func WaitStatus(t testing.TB, socket, what string, ok func(status.Snapshot) bool) status.Snapshot {
	t.Helper()
	var snap status.Snapshot
	poll.Within(t, WaitTimeout, 50*time.Millisecond, "status to show "+what, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := status.Fetch(ctx, socket)
		if err != nil {
			return false, err.Error()
		}
		snap = s
		return ok(s), fmt.Sprintf("templates %+v, units %+v", s.Templates, s.Units)
	})
	return snap
}
