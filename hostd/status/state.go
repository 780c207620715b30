package status

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/vaulttoken"
)

// unitStateTimeout bounds reading one unit's state while building a snapshot.
const unitStateTimeout = 2 * time.Second

// TemplateRef names a configured template, so status lists it before its
// first render.
type TemplateRef struct {
	Destination string
	Unit        string // may be empty
}

// Options describes what status reports on. AuthState and UnitState are
// optional live views; without them State relies on events alone.
type Options struct {
	Version      string
	VaultAddress string
	AuthMethod   string
	Templates    []TemplateRef
	// VaultGrace is how long Vault requests may fail before the snapshot
	// counts as unhealthy.
	VaultGrace time.Duration

	// AuthState returns the authenticator's current view; it replaces what
	// auth events said (it knows, say, that Vault rejected the token).
	AuthState func() Auth
	// UnitState reads a unit's current ActiveState and SubState from
	// systemd. Called for every unit on every snapshot, with a deadline.
	UnitState func(ctx context.Context, unit string) (activeState, subState string, err error)

	Now func() time.Time // default time.Now
}

// State keeps the latest of every event for status output. It implements
// event.Sink and is safe for concurrent use.
type State struct {
	mu        sync.Mutex
	opts      Options
	started   time.Time
	vault     Vault
	auth      Auth
	templates []*Template // configured first, then any seen in events
	units     []*Unit
	pending   map[string]time.Time // unit → time of the Pending event
	reports   []*Report            // one per site, in the order first seen
}

var _ event.Sink = (*State)(nil)

// NewState returns a State for opts, started now.
func NewState(opts Options) *State {
	s := &State{pending: map[string]time.Time{}}
	s.Reconfigure(opts)
	s.started = s.opts.Now()
	return s
}

// Reconfigure applies new options after a configuration reload. History of
// templates and units that are still configured is kept; the others are
// dropped.
func (s *State) Reconfigure(opts Options) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts = opts
	s.vault.Address = opts.VaultAddress
	s.vault.Grace = Seconds(opts.VaultGrace)
	if s.auth.Method != opts.AuthMethod {
		s.auth = Auth{Method: opts.AuthMethod}
	}

	var templates []*Template
	var units []*Unit
	for _, ref := range opts.Templates {
		t := s.template(ref.Destination)
		t.Unit = ref.Unit
		templates = append(templates, t)
		if ref.Unit != "" && !slices.ContainsFunc(units, func(u *Unit) bool { return u.Name == ref.Unit }) {
			units = append(units, s.unit(ref.Unit))
		}
	}
	s.templates, s.units = templates, units
	for name := range s.pending {
		if !slices.ContainsFunc(units, func(u *Unit) bool { return u.Name == name }) {
			delete(s.pending, name)
		}
	}
}

// Publish implements event.Sink.
func (s *State) Publish(e event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := e.(type) {
	case event.Auth:
		s.onAuth(e)
	case event.VaultRequest:
		s.onVaultRequest(e)
	case event.Render:
		s.onRender(e)
	case event.Restart:
		s.onRestart(e)
	case event.Pending:
		s.onPending(e)
	case event.Running:
		s.onRunning(e)
	case event.Report:
		s.onReport(e)
	}
}

func (s *State) onAuth(e event.Auth) {
	if e.Method != "" {
		s.auth.Method = e.Method
	}
	if !e.OK {
		s.auth.LastError = vaulttoken.Redact(e.Err)
		s.auth.LastErrorTime = e.Time
		if !e.Renewal {
			// A failed login leaves no token; a failed renewal leaves the
			// old one usable until it expires.
			s.auth.Authenticated = false
			s.auth.TokenExpiry = time.Time{}
		}
		return
	}
	s.auth.Authenticated = true
	s.auth.TokenExpiry = e.TokenExpiry
	s.auth.Renewable = e.Renewable
	if e.Renewal {
		s.auth.LastRenewal = e.Time
	} else {
		s.auth.LastLogin = e.Time
	}
}

func (s *State) onVaultRequest(e event.VaultRequest) {
	s.vault.Requests++
	s.vault.LastRequest = e.Time
	s.vault.LastStatusCode = e.StatusCode
	ok := e.Err == "" && e.StatusCode >= 200 && e.StatusCode < 400
	if ok {
		s.vault.FailingSince = time.Time{}
		return
	}
	if s.vault.FailingSince.IsZero() {
		s.vault.FailingSince = e.Time
	}
	s.vault.Errors++
	s.vault.LastError = vaulttoken.Redact(e.Err)
	if s.vault.LastError == "" {
		s.vault.LastError = "HTTP " + strconv.Itoa(e.StatusCode)
	}
}

func (s *State) onRender(e event.Render) {
	t := s.templateSeen(e.Template)
	if e.Unit != "" {
		t.Unit = e.Unit
		s.unitSeen(e.Unit)
	}
	t.Renders++
	t.LastRender = e.Time
	t.LastError = vaulttoken.Redact(e.Err)
	if e.Err != "" {
		t.Errors++
		return
	}
	if e.Changed {
		t.Changes++
		t.LastChange = e.Time
	}
}

func (s *State) onRestart(e event.Restart) {
	u := s.unitSeen(e.Unit)
	u.Restarts++
	u.LastRestart = e.Time
	u.LastResult = e.Result
	u.LastRestartDuration = e.Duration.Seconds()
	u.ActiveState, u.SubState = e.ActiveState, e.SubState
	u.RolledBack = e.RolledBack
	if e.RolledBack {
		u.Rollbacks++
	}
	u.LastError = vaulttoken.Redact(e.Err)
	if !e.KeptProcess() {
		u.RunningOn = nil // the old process's; the Running after the restart says the new one's
	}
	// The restart ends the batch it began with; a Pending published after
	// that belongs to the next batch, which is still waiting.
	if since, ok := s.pending[e.Unit]; ok && !since.After(e.Began()) {
		delete(s.pending, e.Unit)
		u.PendingDue, u.PendingCause = time.Time{}, ""
	}
}

func (s *State) onPending(e event.Pending) {
	u := s.unitSeen(e.Unit)
	u.PendingDue = e.Due
	u.PendingCause = vaulttoken.Redact(e.Cause)
	s.pending[e.Unit] = e.Time
}

func (s *State) onRunning(e event.Running) {
	u := s.unitSeen(e.Unit)
	u.RunningOn = make([]RunningFile, len(e.Files))
	for i, f := range e.Files {
		u.RunningOn[i] = RunningFile{Destination: f.Destination, Digest: f.Digest, Since: f.Since}
	}
}

func (s *State) onReport(e event.Report) {
	r := listed(&s.reports, entry(s.reports, func(r *Report) bool { return r.Mount == e.Mount && r.Role == e.Role && r.Site == e.Site },
		&Report{Mount: e.Mount, Role: e.Role, Site: e.Site}))
	r.Host, r.AccessKey, r.Unit, r.LastAttempt = e.Host, e.AccessKey, e.Unit, e.Time
	r.LastError = vaulttoken.Redact(e.Err)
	if e.OK {
		r.LastSuccess = e.Time
	}
}

// template returns the entry for a destination, new or kept from before.
func (s *State) template(dest string) *Template {
	return entry(s.templates, func(t *Template) bool { return t.Destination == dest }, &Template{Destination: dest})
}

// templateSeen is template, adding a new entry to the list.
func (s *State) templateSeen(dest string) *Template {
	return listed(&s.templates, s.template(dest))
}

func (s *State) unit(name string) *Unit {
	return entry(s.units, func(u *Unit) bool { return u.Name == name }, &Unit{Name: name})
}

func (s *State) unitSeen(name string) *Unit {
	return listed(&s.units, s.unit(name))
}

// entry returns the first of list that is, or else fresh (not added to
// list).
func entry[E any](list []*E, is func(*E) bool, fresh *E) *E {
	if i := slices.IndexFunc(list, is); i >= 0 {
		return list[i]
	}
	return fresh
}

// listed returns e, appending it to *list when it is not there yet.
func listed[E any](list *[]*E, e *E) *E {
	if !slices.Contains(*list, e) {
		*list = append(*list, e)
	}
	return e
}

// Snapshot returns a copy of the current state, with the live views of
// Options asked for their current answers. ctx bounds those reads.
func (s *State) Snapshot(ctx context.Context) Snapshot {
	s.mu.Lock()
	snap := Snapshot{
		Version:     s.opts.Version,
		StartedAt:   s.started,
		GeneratedAt: s.opts.Now(),
		Vault:       s.vault,
		Auth:        s.auth,
		Templates:   make([]Template, 0, len(s.templates)),
		Units:       make([]Unit, 0, len(s.units)),
	}
	for _, t := range s.templates {
		snap.Templates = append(snap.Templates, *t)
	}
	for _, u := range s.units {
		snap.Units = append(snap.Units, *u)
	}
	for _, r := range s.reports {
		snap.Reports = append(snap.Reports, *r)
	}
	authState, unitState := s.opts.AuthState, s.opts.UnitState
	s.mu.Unlock()

	// Live reads happen outside the lock: systemd may be slow.
	if authState != nil {
		live := authState()
		live.LastError = vaulttoken.Redact(live.LastError)
		snap.Auth = live
	}
	if !snap.Auth.TokenExpiry.IsZero() && !snap.GeneratedAt.Before(snap.Auth.TokenExpiry) {
		snap.Auth.Authenticated = false
	}
	if unitState != nil {
		for i := range snap.Units {
			readUnitState(ctx, unitState, &snap.Units[i])
		}
	}
	return snap
}

func readUnitState(ctx context.Context, read func(context.Context, string) (string, string, error), u *Unit) {
	ctx, cancel := context.WithTimeout(ctx, unitStateTimeout)
	defer cancel()
	active, sub, err := read(ctx, u.Name)
	if err != nil {
		u.StateError = vaulttoken.Redact(err.Error())
		return
	}
	u.ActiveState, u.SubState = active, sub
}
