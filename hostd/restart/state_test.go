package restart_test

import (
	"testing"

	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
)

func TestStateWords(t *testing.T) {
	for _, c := range []struct {
		unit                               string
		st                                 restart.State
		active, inactive, failed, changing bool
		up                                 bool
	}{
		{"a.service", restart.State{ActiveState: "active", SubState: "running"}, true, false, false, false, true},
		{"a.service", restart.State{ActiveState: "active", SubState: "exited"}, true, false, false, false, false},
		{"a.socket", restart.State{ActiveState: "active", SubState: "listening"}, true, false, false, false, true},
		{"a.service", restart.State{ActiveState: "inactive", SubState: "dead"}, false, true, false, false, false},
		{"a.service", restart.State{ActiveState: "failed", SubState: "failed"}, false, false, true, false, false},
		{"a.service", restart.State{ActiveState: "deactivating", SubState: "stop-sigterm"}, false, false, false, true, false},
		{"a.service", restart.State{ActiveState: "reloading", SubState: "reload"}, false, false, false, true, false},
		{"a.service", restart.State{ActiveState: "activating", SubState: "start"}, false, false, false, false, false},
	} {
		st := c.st
		got := [5]bool{st.Active(), st.Inactive(), st.Failed(), st.Changing(), st.Up(c.unit)}
		want := [5]bool{c.active, c.inactive, c.failed, c.changing, c.up}
		if got != want {
			t.Errorf("%s %s/%s: active, inactive, failed, changing, up = %v, want %v", c.unit, st.ActiveState, st.SubState, got, want)
		}
	}
}

func TestIsService(t *testing.T) {
	for unit, want := range map[string]bool{"sigsci-agent.service": true, "sigsci-agent.socket": false, "a.service.d": false, "service": false} {
		if got := restart.IsService(unit); got != want {
			t.Errorf("IsService(%q) = %v, want %v", unit, got, want)
		}
	}
}
