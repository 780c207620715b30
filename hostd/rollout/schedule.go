package rollout

import "time"

// dueAt is when a batch whose restart may run from earliest on is due:
// earliest itself, or the window's next opening when earliest falls outside
// it, plus the batch's share of the splay. Inside a window the splay is
// shortened to the time left until the window closes, so every host of a
// fleet restarts inside the window and the hosts stay spread over it: with
// a 02:00-04:00 window and a 30m splay, changes made at noon restart between
// 02:00 and 02:30; with a 3h splay, between 02:00 and 04:00.
func (r *Rollout) dueAt(earliest time.Time, share float64) time.Time {
	start := r.opts.Window.Next(earliest)
	splay := max(r.opts.Splay, 0)
	if closes := r.opts.Window.closing(start); !closes.IsZero() && closes.Sub(start) < splay {
		splay = closes.Sub(start)
	}
	return start.Add(time.Duration(share * float64(splay)))
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
