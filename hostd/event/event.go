// Package event holds the plain data that hostd's stages hand to each other.
//
// Data flows down the chain auth → vaultproxy → render → write →
// rollout/restart → report: each stage passes its result to the next as plain
// values (render's changed files to rollout) and publishes what happened as one
// of the values below, which the report side (the fleet report to Vault,
// metrics, status) consumes. A stage may import the types and pure functions of
// one above it (render uses vaultproxy's address and its creds path parser;
// rollout uses write's Snapshot and reads a backup back with
// write.ReadSnapshot), but it never calls into a running stage above it. Five
// calls run back up the chain, each wired by hostd/daemon through a function
// value or a small interface:
//
//   - vaultproxy tells auth that Vault rejected the token (TokenRejected), so
//     that auth logs in again at once;
//   - render asks rollout before each write whether a unit did not survive
//     that content (render's Options.Refuse, rollout's Refuse);
//   - status reads live views at each snapshot (auth's state, systemd's state
//     of each unit) and, for `hostd refresh`, has the renderer read every
//     secret again and rollout try rejected content again;
//   - the fleet report writes to Vault with auth's current token;
//   - rollout puts the previous files back through write.Put when a unit did
//     not survive new content (rollout's RestoreFunc).
//
// Nothing else flows back. The types carry names, times, states, error text
// and access key ids (identifiers, not secrets) only, never a token or a
// secret key, and this package imports nothing of hostd.
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
	Result   string // one of the Result* values below, or another systemd job result
	Duration time.Duration
	// ActiveState and SubState are read from systemd after the restart.
	ActiveState string
	SubState    string
	RolledBack  bool
	Err         string
}

// Began is when the restart reported began: Time less Duration. A Pending
// published after it belongs to the next batch, which is still waiting.
func (e Restart) Began() time.Time { return e.Time.Add(-e.Duration) }

// KeptProcess reports whether the unit's process is certainly the one from
// before: the content was rejected without a restart. After any other
// result the process may have been replaced or be gone (an error may follow
// a job systemd queued before its reply was lost; not_running also follows
// a restart after which the unit was found stopped), and what it runs on is
// known only from the event.Running that follows.
func (e Restart) KeptProcess() bool { return e.Result == ResultRejected }

// Restart results (Restart.Result). The first are systemd's job results as
// hostd/restart reports them; systemd has others (canceled, timeout,
// dependency, skipped, and newer ones), which pass through unchanged. The
// rest are hostd's own: hostd/rollout publishes them.
const (
	ResultDone       = "done"        // the job succeeded; for a change, the unit then passed its health check
	ResultFailed     = "failed"      // the job failed: the unit did not start
	ResultJobTimeout = "job_timeout" // no job result within hostd's job timeout: the job may still run, or its result was lost with the bus (systemd's own "timeout" is JobTimeoutSec firing)

	ResultUnhealthy   = "unhealthy"   // job done, but the unit did not stay up or failed the check
	ResultUnconfirmed = "unconfirmed" // job done, but the unit's state could not be read; retried later
	// ResultNotRunning: the unit was not running (stopped, or failed before
	// the change): it was not restarted, and it reads its new files when it
	// is started. It is not a failure of the change.
	ResultNotRunning     = "not_running"
	ResultError          = "error"           // no restart job was queued (unit unknown, bus down); retried later
	ResultRolledBack     = "rolled_back"     // backups restored and the unit is healthy on them
	ResultRollbackFailed = "rollback_failed" // backups restored, but the unit is still not healthy
	ResultRejected       = "rejected"        // the same content failed before: backups restored, no restart
)

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
// file it reads: when a restart batch ends, whatever its result, if systemd
// answers for the process (published just after the batch's Restart), and
// whenever hostd compares the process with its files (at start-up, after a
// reload, and every refresh interval).
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
