package config

import "time"

// Window is a daily maintenance window in which restarts may run. Start and
// End are wall-clock times since midnight in Location; End before Start means
// the window crosses midnight.
type Window struct {
	Start, End time.Duration
	Location   *time.Location
}

// Next returns t itself when t is inside the window, otherwise the moment the
// window next opens. Times are wall-clock in Location, so a window keeps its
// local hours across daylight-saving changes.
func (w *Window) Next(t time.Time) time.Time {
	local := t.In(w.location())
	var next time.Time
	// A window that opened yesterday may still be open; tomorrow's opening
	// is the latest candidate.
	for day := -1; day <= 1; day++ {
		open, shut := w.bounds(local, day)
		if !t.Before(open) && t.Before(shut) {
			return t
		}
		if open.After(t) && (next.IsZero() || open.Before(next)) {
			next = open
		}
	}
	return next
}

// bounds returns when the window that opens on local's date plus day opens
// and closes.
func (w *Window) bounds(local time.Time, day int) (open, shut time.Time) {
	y, m, d := local.Date()
	open = w.at(y, m, d+day, w.Start)
	closeDay := d + day
	if w.End <= w.Start {
		closeDay++
	}
	return open, w.at(y, m, closeDay, w.End)
}

func (w *Window) at(y int, m time.Month, d int, since time.Duration) time.Time {
	h := int(since / time.Hour)
	min := int(since % time.Hour / time.Minute)
	t := time.Date(y, m, d, h, min, 0, 0, w.location())
	// A wall time skipped by a daylight-saving change may come back as the
	// same instant under the old offset, i.e. earlier on the clock; move it
	// to the first wall time that exists after the gap.
	if wall := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute; wall < since {
		t = t.Add(since - wall)
	}
	return t
}

func (w *Window) location() *time.Location {
	if w.Location == nil {
		return time.Local
	}
	return w.Location
}
