package clocktest

import (
	"context"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func fired(ch <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestAWaitFiresOnceTheClockShowsItsTime(t *testing.T) {
	c := New(t0)
	wait := c.Until(t0.Add(time.Minute))
	c.Add(59 * time.Second)
	if fired(wait) {
		t.Fatal("the wait fired a second before its time")
	}
	c.Add(time.Second)
	if !fired(wait) {
		t.Fatal("the wait did not fire when the clock reached its time")
	}
	// A wait for a time already shown fires at once: a piece that read the
	// clock before a move and waits after it is not left behind.
	if !fired(c.Until(t0)) {
		t.Fatal("a wait for a time past did not fire at once")
	}
}

func TestWaitBegunReturnsEachMatchingWaitOnce(t *testing.T) {
	c := New(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Until(t0.Add(time.Minute))
	moved := t0.Add(time.Second)
	c.Set(moved)
	// A wait worked out from a reading taken before the move, and one from
	// a reading after it.
	c.Until(t0.Add(30 * time.Minute))
	c.Now()
	c.Until(t0.Add(time.Hour))
	sinceMove := func(w Wait) bool { return !w.Read.Before(moved) }
	if w, err := c.WaitBegun(ctx, sinceMove); err != nil || !w.Until.Equal(t0.Add(time.Hour)) {
		t.Fatalf("WaitBegun = %+v, %v; want the wait worked out from a reading after the move", w, err)
	}

	// The next call waits for a wait begun after that one.
	got := make(chan Wait, 1)
	go func() {
		w, _ := c.WaitBegun(ctx, nil)
		got <- w
	}()
	c.Until(t0.Add(2 * time.Hour))
	if w := <-got; !w.Until.Equal(t0.Add(2 * time.Hour)) {
		t.Fatalf("WaitBegun = %+v, want the wait begun after the last one returned", w)
	}

	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if _, err := c.WaitBegun(short, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitBegun with no new wait = %v, want the context's error", err)
	}
}
