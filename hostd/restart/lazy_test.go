package restart_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
)

// A host may boot with hostd before the bus: the lazy connection fails
// while there is none, connects once it is there, and refuses after Close.
func TestLazyConnDialsOnceTheBusIsThereAndNotAfterClose(t *testing.T) {
	m, _, ctx := setup(t, 10*time.Second, map[string]string{"agent.service": sleeper}, "agent.service")
	bus := filepath.Join(t.TempDir(), "bus")
	lazy := restart.NewLazyConn(restart.Options{Bus: restart.UserBus, Address: "unix:path=" + bus})
	t.Cleanup(lazy.Close)

	if _, err := lazy.UnitState(ctx, "agent.service"); err == nil || !strings.Contains(err.Error(), bus) {
		t.Fatalf("before the bus is there: err = %v, want one naming %s", err, bus)
	}
	if err := os.Symlink(filepath.Join(m.RuntimeDir(), "bus"), bus); err != nil {
		t.Fatal(err)
	}
	if st, err := lazy.UnitState(ctx, "agent.service"); err != nil || !st.Active() {
		t.Fatalf("once the bus is there: %+v, %v", st, err)
	}
	if p, err := lazy.MainProcess(ctx, "agent.service"); err != nil || !p.Running() {
		t.Fatalf("main process: %+v, %v", p, err)
	}

	lazy.Close()
	res, err := lazy.Restart(ctx, "agent.service")
	if !errors.Is(err, restart.ErrClosed) || res.Unit != "agent.service" || res.Job != "" {
		t.Fatalf("restart after Close: %+v, %v; want nothing queued and ErrClosed", res, err)
	}
	if _, err := lazy.TryRestart(ctx, "agent.service"); !errors.Is(err, restart.ErrClosed) {
		t.Fatalf("try-restart after Close: %v, want ErrClosed", err)
	}
}
