package config

import (
	"testing"
	"time"
	_ "time/tzdata" // the zones these tests use, whatever the host has
)

func TestWindowNext(t *testing.T) {
	utc := time.UTC
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	night := &Window{Start: 2 * time.Hour, End: 4 * time.Hour, Location: utc}
	acrossMidnight := &Window{Start: 22 * time.Hour, End: 2 * time.Hour, Location: utc}
	local := &Window{Start: 2 * time.Hour, End: 4 * time.Hour, Location: newYork}
	halfPast := &Window{Start: 2*time.Hour + 30*time.Minute, End: 4 * time.Hour, Location: newYork}

	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name string
		w    *Window
		now  string
		want string
	}{
		{"before the window opens", night, "2026-05-10T01:59:00Z", "2026-05-10T02:00:00Z"},
		{"exactly at the start", night, "2026-05-10T02:00:00Z", "2026-05-10T02:00:00Z"},
		{"inside", night, "2026-05-10T03:15:00Z", "2026-05-10T03:15:00Z"},
		{"end is exclusive", night, "2026-05-10T04:00:00Z", "2026-05-11T02:00:00Z"},
		{"after the window", night, "2026-05-10T23:00:00Z", "2026-05-11T02:00:00Z"},
		{"across midnight, evening part", acrossMidnight, "2026-05-10T23:30:00Z", "2026-05-10T23:30:00Z"},
		{"across midnight, morning part", acrossMidnight, "2026-05-11T01:30:00Z", "2026-05-11T01:30:00Z"},
		{"across midnight, after it closed", acrossMidnight, "2026-05-11T02:00:00Z", "2026-05-11T22:00:00Z"},
		{"in the window's timezone", local, "2026-01-10T06:30:00Z", "2026-01-10T07:00:00Z"},      // 01:30 EST → 02:00 EST
		{"inside, given in UTC", local, "2026-01-10T07:30:00Z", "2026-01-10T07:30:00Z"},          // 02:30 EST
		{"summer time keeps local hours", local, "2026-07-10T05:00:00Z", "2026-07-10T06:00:00Z"}, // 01:00 EDT → 02:00 EDT
		// 2026-03-08 02:30 does not exist in New York; the window opens at
		// the first wall time that does, 03:30 EDT.
		{"opening skipped by spring forward", halfPast, "2026-03-08T06:00:00Z", "2026-03-08T07:30:00Z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.w.Next(at(tc.now))
			if want := at(tc.want); !got.Equal(want) {
				t.Errorf("Next(%s) = %s, want %s", tc.now, got.UTC().Format(time.RFC3339), tc.want)
			}
		})
	}
}
