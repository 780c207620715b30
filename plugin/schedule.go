package plugin

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/robfig/cron/v3"
)

// A role's rotation schedule: when the automation (automation.go) rotates
// the role's sites, and whether it retires their old sets by itself.

// Bounds of rotation_window.
const (
	defaultRotationWindow = time.Hour
	minRotationWindow     = 5 * time.Minute
	maxRotationWindow     = 7 * 24 * time.Hour
)

// cronParser reads standard 5-field cron specs (minute hour day-of-month
// month day-of-week), without descriptors like @every.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Role fields of the schedule, named as Vault's own automated rotation
// names them.
var (
	rotationScheduleField = &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: `When to rotate every site of the role: a standard 5-field cron spec in UTC, e.g. "0 3 * * 1". "" removes the schedule.`,
	}
	rotationWindowField = &framework.FieldSchema{
		Type:        framework.TypeDurationSecond,
		Description: "A scheduled rotation starts only within this long after its scheduled time, else waits for the next; the role's sites are spread over its first half. Default 1h, 5m to 168h.",
	}
	disableAutomatedRotationField = &framework.FieldSchema{
		Type:        framework.TypeBool,
		Description: "Pause the scheduled rotations of the role (auto_retire keeps working).",
	}
	autoRetireField = &framework.FieldSchema{
		Type:        framework.TypeBool,
		Description: "Retire a site's old key sets as soon as the fleet guard allows, checked about once a minute; never forced. Default true when rotation_schedule is set.",
	}
)

// roleSchedule is the schedule part of a stored role.
type roleSchedule struct {
	RotationSchedule         string        `json:"rotation_schedule,omitempty"`
	RotationWindow           time.Duration `json:"rotation_window,omitempty"`
	DisableAutomatedRotation bool          `json:"disable_automated_rotation,omitempty"`
	AutoRetire               *bool         `json:"auto_retire,omitempty"`
	// ScheduledSince is when the schedule was set: earlier scheduled times
	// do not count, so setting a schedule never rotates at once.
	ScheduledSince time.Time `json:"scheduled_since,omitzero"`
}

// window is the effective rotation_window.
func (s roleSchedule) window() time.Duration {
	if s.RotationWindow == 0 {
		return defaultRotationWindow
	}
	return s.RotationWindow
}

// autoRetire is the effective auto_retire.
func (s roleSchedule) autoRetire() bool {
	if s.AutoRetire != nil {
		return *s.AutoRetire
	}
	return s.RotationSchedule != ""
}

// active reports whether scheduled rotations run.
func (s roleSchedule) active() bool {
	return s.RotationSchedule != "" && !s.DisableAutomatedRotation
}

// parseRotationSchedule parses a 5-field cron spec, always in UTC.
func parseRotationSchedule(spec string) (cron.Schedule, error) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, errors.New("rotation_schedule is always UTC: leave out TZ=")
	}
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("rotation_schedule %q is not a 5-field cron spec (minute hour day-of-month month day-of-week): %w", truncate(spec, 64), err)
	}
	return sched, nil
}

// mergeSchedule applies the request's schedule fields to s (fields left out
// keep their values) and validates the result.
func mergeSchedule(s *roleSchedule, d *framework.FieldData, now time.Time) error {
	if v, ok := d.GetOk("rotation_schedule"); ok {
		spec := strings.TrimSpace(v.(string))
		if spec != s.RotationSchedule {
			s.RotationSchedule, s.ScheduledSince = spec, now.UTC()
		}
		if spec == "" {
			s.RotationWindow, s.ScheduledSince = 0, time.Time{}
		}
	}
	if v, ok := d.GetOk("rotation_window"); ok {
		s.RotationWindow = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("disable_automated_rotation"); ok {
		s.DisableAutomatedRotation = v.(bool)
	}
	if v, ok := d.GetOk("auto_retire"); ok {
		retire := v.(bool)
		s.AutoRetire = &retire
	}
	if s.RotationSchedule == "" {
		if s.RotationWindow != 0 {
			return errors.New("rotation_window needs a rotation_schedule")
		}
		return nil
	}
	if w := s.window(); w < minRotationWindow || w > maxRotationWindow {
		return fmt.Errorf("rotation_window must be between %s and %s, got %s", minRotationWindow, maxRotationWindow, w)
	}
	sched, err := parseRotationSchedule(s.RotationSchedule)
	if err != nil {
		return err
	}
	if sched.Next(now.UTC()).IsZero() {
		return fmt.Errorf("rotation_schedule %q never fires", s.RotationSchedule)
	}
	return nil
}

// scheduleData is the schedule as a role read shows it.
func scheduleData(s roleSchedule, now time.Time) map[string]interface{} {
	data := map[string]interface{}{
		"rotation_schedule":          s.RotationSchedule,
		"rotation_window":            0,
		"disable_automated_rotation": s.DisableAutomatedRotation,
		"auto_retire":                s.autoRetire(),
	}
	if s.RotationSchedule != "" {
		data["rotation_window"] = int(s.window().Seconds())
	}
	if next := s.plan(now).next; !next.IsZero() {
		data["next_rotation"] = next.Format(time.RFC3339)
	}
	return data
}

// schedulePlan is a role's schedule worked out for one moment.
type schedulePlan struct {
	active bool
	window time.Duration
	open   time.Time // the scheduled time whose window is open; zero if none
	next   time.Time // the next scheduled time; zero if none
}

// plan works the schedule out for now.
func (s roleSchedule) plan(now time.Time) schedulePlan {
	if !s.active() {
		return schedulePlan{}
	}
	sched, err := parseRotationSchedule(s.RotationSchedule)
	if err != nil {
		return schedulePlan{}
	}
	now = now.UTC()
	p := schedulePlan{active: true, window: s.window(), next: sched.Next(now)}
	// The latest scheduled time in (now - window, now], after the schedule
	// was set.
	from := now.Add(-p.window)
	if s.ScheduledSince.After(from) {
		from = s.ScheduledSince
	}
	for t := sched.Next(from); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		p.open = t
	}
	return p
}

// sitePlan is what the schedule asks of one site.
type sitePlan struct {
	due  bool      // rotate now
	next time.Time // when the site is rotated next; zero: never
}

// site decides for site i of n (sorted) of the role whether it is due,
// given when Vault last rotated it. The sites' start times are spread evenly
// over the first half of the window, so the API's rate limit and the
// fleet's restarts are not hit all at once, and a site whose rotation failed
// is retried within the second half.
func (p schedulePlan) site(i, n int, lastRotation, now time.Time) sitePlan {
	if !p.active {
		return sitePlan{}
	}
	offset := time.Duration(0)
	if n > 1 {
		offset = p.window / 2 * time.Duration(i) / time.Duration(n)
	}
	if !p.open.IsZero() && lastRotation.Before(p.open) {
		start := p.open.Add(offset)
		return sitePlan{due: !now.Before(start), next: start}
	}
	if p.next.IsZero() {
		return sitePlan{}
	}
	return sitePlan{next: p.next.Add(offset)}
}
