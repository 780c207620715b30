// Package status owns hostd's local socket and what it says: a State that
// keeps the latest of every event (it is an event.Sink), the Snapshot built
// from it, the unix-socket server and client that carry the Snapshot, its
// table and JSON forms, the health rule behind `hostd status`'s exit code,
// and both ends of `hostd refresh` (refresh.go).
//
// The socket serves one command that changes something: POST RefreshPath
// calls the refresh function the daemon gives NewHandler, which makes hostd
// read every secret again now (and rewrite files that changed). Everything
// else only reads. The package itself never changes a template, a unit or
// the Vault token, and never holds the token. Error texts are scrubbed of
// anything that looks like a Vault token before they are kept.
package status

import (
	"fmt"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// Snapshot is hostd's state at one moment. The JSON field names are part of
// hostd's interface (`hostd status -json`) and only ever gain fields.
type Snapshot struct {
	Version     string     `json:"version"`
	StartedAt   time.Time  `json:"started_at"`
	GeneratedAt time.Time  `json:"generated_at"`
	Vault       Vault      `json:"vault"`
	Auth        Auth       `json:"auth"`
	Templates   []Template `json:"templates"`
	Units       []Unit     `json:"units"`
	// Reports is the last fleet report per site (hostd/report), if any.
	Reports []Report `json:"reports,omitempty"`
}

// Report is the last report to Vault of the access key this host runs for
// one site. A failing report does not make hostd unhealthy (the agent
// serves on its keys either way), but retirement then waits for a report
// that does not come.
type Report struct {
	Mount     string `json:"mount"`
	Role      string `json:"role"`
	Site      string `json:"site"`
	Host      string `json:"host"`
	AccessKey string `json:"access_key"`
	Unit      string `json:"unit,omitempty"`
	// LastAttempt is the last report sent, LastSuccess the last one Vault
	// took; LastError says why the last attempt failed ("" when it did
	// not).
	LastAttempt time.Time `json:"last_attempt"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// Vault describes the renderer's requests to Vault.
type Vault struct {
	Address        string    `json:"address"`
	Requests       uint64    `json:"requests"`
	Errors         uint64    `json:"errors"` // no answer, or an answer other than 2xx/3xx
	LastRequest    time.Time `json:"last_request,omitzero"`
	LastStatusCode int       `json:"last_status_code,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	// FailingSince is the first failed request after the last good one;
	// zero while requests succeed.
	FailingSince time.Time `json:"failing_since,omitzero"`
	// Grace is how long requests may fail before hostd counts as unhealthy
	// (two refresh intervals: one failed refresh is not yet news).
	Grace Seconds `json:"grace_seconds,omitempty"`
}

// Seconds is a duration shown as whole seconds in JSON.
type Seconds time.Duration

// MarshalJSON writes whole seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprint(int64(time.Duration(s) / time.Second))), nil
}

// UnmarshalJSON reads whole seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var n int64
	if _, err := fmt.Sscan(string(b), &n); err != nil {
		return fmt.Errorf("grace_seconds: %w", err)
	}
	*s = Seconds(time.Duration(n) * time.Second)
	return nil
}

// Auth describes hostd's Vault login. It never carries the token.
type Auth struct {
	Method        string    `json:"method"`
	Authenticated bool      `json:"authenticated"`
	TokenExpiry   time.Time `json:"token_expiry,omitzero"` // zero: unknown or never expires
	Renewable     bool      `json:"renewable"`
	LastLogin     time.Time `json:"last_login,omitzero"`
	LastRenewal   time.Time `json:"last_renewal,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// Template describes one rendered file.
type Template struct {
	Destination string    `json:"destination"`
	Unit        string    `json:"unit,omitempty"`
	Renders     uint64    `json:"renders"`
	Changes     uint64    `json:"changes"`
	Errors      uint64    `json:"errors"`
	LastRender  time.Time `json:"last_render,omitzero"` // last attempt, successful or not
	LastChange  time.Time `json:"last_change,omitzero"`
	LastError   string    `json:"last_error,omitempty"` // empty when the last attempt succeeded
}

// Unit describes one systemd unit hostd restarts.
type Unit struct {
	Name        string `json:"name"`
	ActiveState string `json:"active_state,omitempty"`
	SubState    string `json:"sub_state,omitempty"`
	// StateError says why the unit's current state could not be read.
	StateError          string    `json:"state_error,omitempty"`
	Restarts            uint64    `json:"restarts"`
	Rollbacks           uint64    `json:"rollbacks"`
	LastRestart         time.Time `json:"last_restart,omitzero"`
	LastResult          string    `json:"last_result,omitempty"`
	LastRestartDuration float64   `json:"last_restart_seconds,omitempty"`
	RolledBack          bool      `json:"rolled_back"` // the last restart ended in a rollback
	LastError           string    `json:"last_error,omitempty"`
	PendingDue          time.Time `json:"pending_due,omitzero"` // a restart is scheduled for then
	PendingCause        string    `json:"pending_cause,omitempty"`
	// RunningOn is what the unit's running process started on, per file,
	// as last checked (at start-up, after each restart, every refresh
	// interval). A restart's result clears it until the check after it
	// (but for a rejected change, which restarts nothing).
	RunningOn []RunningFile `json:"running_on,omitempty"`
}

// RunningFile is one file as a unit's running process runs on it.
type RunningFile struct {
	Destination string `json:"destination"`
	// Digest is the hex SHA-256 of the content the process started on;
	// empty when that is not known (the file changed after the process
	// started: a restart is owed).
	Digest string    `json:"digest,omitempty"`
	Since  time.Time `json:"since,omitzero"`
}

// Healthy reports whether s describes a host that serves with fresh keys,
// and if not, why, one reason per problem. Unhealthy means: not
// authenticated to Vault, Vault requests failing for longer than the
// grace, a template not rendered yet or whose last render
// failed, or a unit that is not active, whose last restart failed or was
// rolled back.
func Healthy(s Snapshot) (bool, []string) {
	var reasons []string
	if !s.Auth.Authenticated {
		r := "not authenticated to Vault"
		if s.Auth.LastError != "" {
			r += ": " + s.Auth.LastError
		}
		reasons = append(reasons, r)
	}
	if v := s.Vault; !v.FailingSince.IsZero() && s.GeneratedAt.Sub(v.FailingSince) > time.Duration(v.Grace) {
		reasons = append(reasons, fmt.Sprintf("vault: every request failed for %s (last: %s); the agent runs on the keys it has",
			s.GeneratedAt.Sub(v.FailingSince).Round(time.Second), v.LastError))
	}
	for _, t := range s.Templates {
		switch {
		case t.LastError != "":
			reasons = append(reasons, fmt.Sprintf("template %s: last render failed: %s", t.Destination, t.LastError))
		case t.LastRender.IsZero():
			reasons = append(reasons, fmt.Sprintf("template %s: not rendered yet", t.Destination))
		}
	}
	for _, u := range s.Units {
		reasons = append(reasons, unitProblems(u)...)
	}
	return len(reasons) == 0, reasons
}

func unitProblems(u Unit) []string {
	var reasons []string
	switch {
	case u.StateError != "":
		reasons = append(reasons, fmt.Sprintf("unit %s: state unknown: %s", u.Name, u.StateError))
	case u.ActiveState != "" && u.ActiveState != "active":
		reasons = append(reasons, fmt.Sprintf("unit %s is %s", u.Name, joinState(u.ActiveState, u.SubState)))
	}
	switch {
	case u.RolledBack:
		reasons = append(reasons, fmt.Sprintf("unit %s: last restart was rolled back to the previous configuration", u.Name))
	case u.LastResult != "" && u.LastResult != event.ResultDone && u.LastResult != event.ResultNotRunning:
		r := fmt.Sprintf("unit %s: last restart failed (%s)", u.Name, u.LastResult)
		if u.LastError != "" {
			r += ": " + u.LastError
		}
		reasons = append(reasons, r)
	}
	return reasons
}

func joinState(active, sub string) string {
	if sub == "" {
		return active
	}
	return active + "/" + sub
}
