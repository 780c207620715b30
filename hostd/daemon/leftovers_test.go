package daemon

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartRemovesLeftoversOfAKilledWrite: a hostd killed mid-write leaves
// a staged temporary file (with a secret) beside the destination; the next
// start removes it, says so with the path only, and leaves the rest alone.
func TestStartRemovesLeftoversOfAKilledWrite(t *testing.T) {
	const secret = "secretaccesskey=LEFTOVER-SECRET"
	var leftover, backupLeftover, lookalike string
	h := start(t, func(dir, socket string) string {
		leftover = filepath.Join(dir, ".agent.conf.tmp-1234567890")
		backupLeftover = filepath.Join(dir, ".agent.conf.bak.tmp-42")
		lookalike = filepath.Join(dir, ".agent.conf.tmp-mine")
		for _, p := range []string{leftover, backupLeftover, lookalike} {
			if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"agent.conf"}})
	})
	fetch(t, h.socket) // started

	for _, p := range []string{leftover, backupLeftover} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived the start: %v", filepath.Base(p), err)
		}
		if !strings.Contains(h.logs.String(), p) {
			t.Errorf("the removal of %s is not logged:\n%s", p, h.logs.String())
		}
	}
	if _, err := os.Lstat(lookalike); err != nil {
		t.Errorf("a file hostd did not create was removed: %v", err)
	}
	if strings.Contains(h.logs.String(), "LEFTOVER-SECRET") {
		t.Errorf("a leftover's content reached the log:\n%s", h.logs.String())
	}
}
