package stage

import (
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

func TestLeftOutFieldsTakeTheirDefaults(t *testing.T) {
	r := Reporting{}.WithDefaults()
	if r.Sink != event.Discard || r.Logger == nil {
		t.Errorf("Reporting{}.WithDefaults() = %+v, want event.Discard and a logger", r)
	}
	c := Clock{}.WithDefaults()
	if c.Now == nil || c.Rand == nil || c.Until == nil {
		t.Fatalf("Clock{}.WithDefaults() left a func out: %+v", c)
	}
	if v := c.Rand(); v < 0 || v >= 1 {
		t.Errorf("default Rand() = %v, want a number in [0, 1)", v)
	}
	select {
	case <-c.Until(time.Now().Add(-time.Second)):
	case <-time.After(10 * time.Second):
		t.Error("the default Until did not fire for a time already past")
	}
	select {
	case <-c.Until(time.Now().Add(time.Hour)):
		t.Error("the default Until fired an hour early")
	default:
	}
}

func TestGivenFieldsAreKept(t *testing.T) {
	sink := event.Fanout{}
	r := Reporting{Sink: sink}.WithDefaults()
	if _, ok := r.Sink.(event.Fanout); !ok {
		t.Errorf("Sink replaced: %T", r.Sink)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := Clock{Now: func() time.Time { return t0 }, Rand: func() float64 { return 0.25 }}.WithDefaults()
	if c.Now() != t0 || c.Rand() != 0.25 {
		t.Errorf("Clock funcs replaced: Now() = %v, Rand() = %v", c.Now(), c.Rand())
	}
}

func TestOrDefault(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v, want time.Duration
	}{
		{"zero takes the default", 0, time.Minute},
		{"negative takes the default", -time.Second, time.Minute},
		{"positive is kept", time.Second, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := OrDefault(tc.v, time.Minute); got != tc.want {
				t.Errorf("OrDefault(%v, 1m) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}
