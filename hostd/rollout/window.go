package rollout

import "time"

// Window is a daily maintenance window: restarts run only inside it. Start
// and End are wall-clock times since midnight in Location (nil: UTC); End
// before Start means the window crosses midnight, and Start equal to End
// means the whole day.
type Window struct {
	Start, End time.Duration
	Location   *time.Location
}

// Next returns t when t is inside the window, else the window's next opening
// after t. Wall-clock times are used, so a window keeps its local hours
// across daylight-saving changes.
func (w *Window) Next(t time.Time) time.Time {
	if w == nil || w.Start == w.End {
		return t
	}
	local := t.In(w.location())
	// The window that opened yesterday may still be open (crossing midnight).
	for day := -1; day <= 0; day++ {
		open, close := w.on(local, day)
		if !local.Before(open) && local.Before(close) {
			return t
		}
	}
	if open, _ := w.on(local, 0); open.After(local) {
		return open
	}
	open, _ := w.on(local, 1)
	return open
}

// closing returns when the window open at t closes; zero when there is no
// window (or it spans the whole day) or t is outside it.
func (w *Window) closing(t time.Time) time.Time {
	if w == nil || w.Start == w.End {
		return time.Time{}
	}
	local := t.In(w.location())
	for day := -1; day <= 0; day++ {
		open, close := w.on(local, day)
		if !local.Before(open) && local.Before(close) {
			return close
		}
	}
	return time.Time{}
}

// on returns the opening and closing of the window that opens on the
// calendar day of t plus days.
func (w *Window) on(t time.Time, days int) (open, close time.Time) {
	y, m, d := t.Date()
	loc := t.Location()
	open = time.Date(y, m, d+days, 0, 0, 0, int(w.Start), loc)
	closeDay := d + days
	if w.End < w.Start {
		closeDay++
	}
	close = time.Date(y, m, closeDay, 0, 0, 0, int(w.End), loc)
	return open, close
}

func (w *Window) location() *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}
