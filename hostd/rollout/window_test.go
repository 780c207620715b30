package rollout_test

import (
	"testing"
	"time"
	_ "time/tzdata" // the zones these tests use, whatever the host has

	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
)

func TestWindowNext(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(loc *time.Location, s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	night := &rollout.Window{Start: 2 * time.Hour, End: 4 * time.Hour, Location: time.UTC}
	midnight := &rollout.Window{Start: 22 * time.Hour, End: 2 * time.Hour, Location: time.UTC}
	local := &rollout.Window{Start: 2*time.Hour + 30*time.Minute, End: 5 * time.Hour, Location: berlin}

	tests := []struct {
		name string
		w    *rollout.Window
		t    time.Time
		want time.Time
	}{
		{"nil window is always open", nil, at(time.UTC, "2026-03-01 12:00"), at(time.UTC, "2026-03-01 12:00")},
		{"before the window waits for today's opening", night, at(time.UTC, "2026-03-01 01:00"), at(time.UTC, "2026-03-01 02:00")},
		{"at the opening runs now", night, at(time.UTC, "2026-03-01 02:00"), at(time.UTC, "2026-03-01 02:00")},
		{"inside runs now", night, at(time.UTC, "2026-03-01 03:59"), at(time.UTC, "2026-03-01 03:59")},
		{"at the closing waits for tomorrow", night, at(time.UTC, "2026-03-01 04:00"), at(time.UTC, "2026-03-02 02:00")},
		{"after the window waits for tomorrow", night, at(time.UTC, "2026-03-01 23:00"), at(time.UTC, "2026-03-02 02:00")},
		{"a window across midnight is open late", midnight, at(time.UTC, "2026-03-01 23:00"), at(time.UTC, "2026-03-01 23:00")},
		{"a window across midnight is open early", midnight, at(time.UTC, "2026-03-02 01:30"), at(time.UTC, "2026-03-02 01:30")},
		{"a window across midnight opens in the evening", midnight, at(time.UTC, "2026-03-02 02:00"), at(time.UTC, "2026-03-02 22:00")},
		{"the window's zone, not the caller's", local, at(time.UTC, "2026-01-15 00:00"), at(berlin, "2026-01-15 02:30")},
		{"inside in the window's zone", local, at(time.UTC, "2026-01-15 02:00"), at(time.UTC, "2026-01-15 02:00")},
		// 2026-03-29 02:00 CET does not exist in Berlin (clocks jump to
		// 03:00); Go normalises the opening to 03:30 CEST.
		{"spring forward keeps the wall clock", local, at(time.UTC, "2026-03-28 23:00"), at(berlin, "2026-03-29 03:30")},
		{"the day after a change still opens at 02:30 local", local, at(time.UTC, "2026-03-29 04:00"), at(berlin, "2026-03-30 02:30")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.w.Next(tc.t)
			if !got.Equal(tc.want) {
				t.Fatalf("Next(%s) = %s, want %s", tc.t, got, tc.want)
			}
		})
	}
}
