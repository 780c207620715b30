// Package event holds the plain data that hostd's stages hand to each other.
//
// Data flows one way: auth → render → write → restart → report. Each stage
// publishes what happened as one of the values below; the report side (the
// fleet report to Vault, metrics, status) consumes them. The types carry
// names, times, states, error text and access key ids (identifiers, not
// secrets) only, never a token or a secret key, and this package imports
// nothing of hostd so that no stage has to reach back up the chain.
package event

import "time"

// Event is one of Auth, VaultRequest, Render, Content, Restart, Pending,
// Reload, Running, Report or AgentKeys.
type Event interface{ event() }

// Auth reports a login or token renewal attempt.
type Auth struct {
	Time    time.Time
	Method  string // approle, cert, jwt or token_file
	Renewal bool   // true for a renewal, false for a login
	OK      bool
	// TokenExpiry is when the current token stops working; zero when unknown
	// or when the attempt failed.
	TokenExpiry time.Time
	Renewable   bool
	// Rejected is true when Vault called the token invalid (revoked or
	// expired) and hostd dropped it: until the next login there is none.
	Rejected bool
	Err      string // operator-readable; never contains a token
}

// VaultRequest reports one request the renderer made to Vault.
type VaultRequest struct {
	Time       time.Time
	StatusCode int    // 0 when no answer arrived
	Err        string // transport error, if any
}

// Render reports one attempt to render a template and write its destination.
type Render struct {
	Time     time.Time
	Template string // the template's name: its destination path
	Unit     string // the systemd unit fed by this template, if any
	Changed  bool   // the destination's bytes changed on disk
	Backup   string // where the previous content was kept, if Changed
	Err      string // render or write error; the old file stays in place
}

// Content reports which Signal Sciences creds secrets a destination's
// content was rendered from, and the access key of each, taken from Vault's
// answers (never from the file). The renderer publishes it after a render
// pass when it differs from the last one for that destination.
type Content struct {
	Time     time.Time
	Template string // the template's name: its destination path
	Unit     string // the systemd unit fed by this template, if any
	Digest   string // hex SHA-256 of the content, as running.Digest
	// Creds is empty when no sigsci creds secret fed the content.
	Creds []Creds
}

// Creds names one sigsci creds secret, <Mount>/creds/<Role>/sites/<Site>,
// and the access key id (never the secret key) it held.
type Creds struct {
	Mount, Role, Site string
	// AccessKey is "" when hostd cannot tell which of Vault's answers the
	// content was rendered from (a new key arrived during the render and
	// the content shows neither key's id): the renderer then reads every
	// secret again.
	AccessKey string
}

// Restart reports the outcome of restarting a unit after its files changed.
type Restart struct {
	Time     time.Time
	Unit     string
	Result   string // done, failed, canceled, not_running, rolled_back, ...
	Duration time.Duration
	// ActiveState and SubState are read from systemd after the restart.
	ActiveState string
	SubState    string
	RolledBack  bool
	Err         string
}

// RestartNotRunning is Restart.Result when the unit was not running
// (stopped, or failed before the change): it was not restarted, and it reads
// its new files when it is started. It is not a failure of the change.
const RestartNotRunning = "not_running"

// Pending reports that a unit has a restart scheduled.
type Pending struct {
	Time  time.Time
	Unit  string
	Due   time.Time // when the restart will run (after debounce, splay, window)
	Cause string    // which templates changed
}

// Reload reports the configuration hostd runs with, once at the start and
// after every reload request (SIGHUP).
type Reload struct {
	Time time.Time
	// OK is false when a reload was rejected (the file has problems) or
	// could not be applied in full; the previous configuration, or the
	// parts of it that could not be replaced, keep running.
	OK bool
	// Templates and Units are the destinations and systemd units of the
	// pipeline that runs now: whatever is not listed is gone.
	Templates []string
	Units     []string
}

// Running reports what content a unit's running process started on, per
// file it reads: after a restart that passed its health check, and whenever
// hostd compares the process with its files (at start-up, after a reload,
// and every refresh interval).
type Running struct {
	Time time.Time
	Unit string
	// Files is empty when the unit is not running.
	Files []RunningFile
}

// RunningFile is one file as a unit's process runs on it.
type RunningFile struct {
	Destination string
	// Digest is the hex SHA-256 of the content the process started on;
	// empty when that is not known: the file changed after the process
	// started, and the unit is owed a restart.
	Digest string
	Since  time.Time // when the process started on this content
}

// Report reports one attempt to tell Vault which access key this host runs
// for a site: a write of <Mount>/fleet/<Role>/sites/<Site>/hosts/<Host>.
type Report struct {
	Time              time.Time
	Mount, Role, Site string
	Host              string
	AccessKey         string
	Unit              string // the unit that runs it; "" for a template without one
	Heartbeat         bool   // a repeat of the report Vault has, not a change
	OK                bool
	Err               string // why Vault refused or did not answer; never a token
}

// AgentKeys lists, each time it changes, the access key every unit runs for
// every site it reads (and the key in each file without a unit).
type AgentKeys struct {
	Time time.Time
	Keys []AgentKey
}

// AgentKey is the access key one unit runs for one site.
type AgentKey struct {
	Unit              string // "" for a template without a unit
	Mount, Role, Site string
	AccessKey         string
}

func (Auth) event()         {}
func (VaultRequest) event() {}
func (Render) event()       {}
func (Restart) event()      {}
func (Pending) event()      {}
func (Reload) event()       {}
func (Running) event()      {}
func (Content) event()      {}
func (Report) event()       {}
func (AgentKeys) event()    {}

// Sink receives events. Implementations must not block for long and must be
// safe for concurrent use.
type Sink interface {
	Publish(Event)
}

// Fanout publishes each event to every sink in order.
type Fanout []Sink

// Publish implements Sink.
func (f Fanout) Publish(e Event) {
	for _, s := range f {
		s.Publish(e)
	}
}

// Discard is a Sink that drops every event.
var Discard Sink = discard{}

type discard struct{}

func (discard) Publish(Event) {}
