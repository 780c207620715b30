package backoff

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestDelayDoublesWithJitterUpToTheCap(t *testing.T) {
	base, ceiling := time.Second, 30*time.Second
	for _, c := range []struct {
		failures int
		lo, hi   time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{6, 15 * time.Second, 30 * time.Second},
		{100, 15 * time.Second, 30 * time.Second},
	} {
		lo := Delay(c.failures, base, ceiling, func() float64 { return 0 })
		hi := Delay(c.failures, base, ceiling, func() float64 { return 0.999999 })
		if lo != c.lo || hi < c.hi-time.Millisecond || hi > c.hi {
			t.Errorf("failures=%d: range [%s,%s], want [%s,%s]", c.failures, lo, hi, c.lo, c.hi)
		}
	}
}

func TestDoubledDoublesPerFailureUpToTheCap(t *testing.T) {
	for failures, want := range map[int]time.Duration{
		0: time.Minute, 1: time.Minute, 2: 2 * time.Minute, 3: 3 * time.Minute, 4: 3 * time.Minute, 1000: 3 * time.Minute,
	} {
		if got := Doubled(failures, time.Minute, 3*time.Minute); got != want {
			t.Errorf("Doubled(%d, 1m, 3m) = %s, want %s", failures, got, want)
		}
	}
	// A ceiling near the largest duration: no doubling overflows past it.
	if huge := time.Duration(math.MaxInt64); Doubled(100, time.Hour, huge) != huge {
		t.Errorf("Doubled(100, 1h, max) = %s, want the ceiling", Doubled(100, time.Hour, huge))
	}
}

func TestDelayIsCapped(t *testing.T) {
	lo := func(n int) time.Duration { return Delay(n, time.Second, 8*time.Second, func() float64 { return 0 }) }
	hi := func(n int) time.Duration {
		return Delay(n, time.Second, 8*time.Second, func() float64 { return 0.999999 })
	}
	if lo(1) != 500*time.Millisecond || hi(3) > 4*time.Second || lo(4) != 4*time.Second || lo(50) != 4*time.Second || hi(50) > 8*time.Second {
		t.Fatalf("backoff out of bounds: %s %s %s %s %s", lo(1), hi(3), lo(4), lo(50), hi(50))
	}
}

func TestBoundsFillDefaultsAndKeepTheCeilingAboveTheBase(t *testing.T) {
	for _, c := range []struct {
		base, ceiling, wantBase, wantCeiling time.Duration
	}{
		{0, 0, time.Second, 5 * time.Minute},
		{-1, -1, time.Second, 5 * time.Minute},
		{2 * time.Second, 0, 2 * time.Second, 5 * time.Minute},
		{0, 10 * time.Second, time.Second, 10 * time.Second},
		{10 * time.Minute, 0, 10 * time.Minute, 10 * time.Minute},
		{5 * time.Second, time.Second, 5 * time.Second, 5 * time.Second},
	} {
		b, m := Bounds(c.base, c.ceiling)
		if b != c.wantBase || m != c.wantCeiling {
			t.Errorf("Bounds(%s, %s) = %s, %s; want %s, %s", c.base, c.ceiling, b, m, c.wantBase, c.wantCeiling)
		}
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context returned %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep returned %v after its wait", err)
	}
}

func TestSleepTickingCallsOnTickWhileItWaits(t *testing.T) {
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	called := make(chan struct{}, 1)
	go func() {
		done <- SleepTicking(ctx, time.Hour, ticks, func() { called <- struct{}{} })
	}()
	ticks <- time.Now()
	<-called
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("SleepTicking returned %v, want context.Canceled", err)
	}
}
