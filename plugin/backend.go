// Package plugin is the Vault secrets engine for Signal Sciences agent keys.
//
// It owns the mount's paths (config, role, creds, rotate, fleet), the mount's
// storage layout, per-site locking, the write-ahead log that makes rotation and
// retirement crash-safe, the hosts' reports that guard retirement, and the
// background work: scheduled rotation, auto_retire and the fleet tidy
// (automation.go), and the copy of all sites a role sees (copy_job.go). It
// paces its API calls per role (pacing.go, pacing_transport.go). It talks to
// the Signal Sciences API only through the keysAPI interface (client.go),
// beneath which the pacing transport counts each answer, and must not know the
// API's JSON shapes or wording, which belong to package sigsci. It keeps no
// package-level mutable state: every mount gets its own backend.
package plugin

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	version "github.com/hashicorp/go-version"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

const backendHelp = `
The sigsci secrets engine stores Signal Sciences (Fastly Next-Gen WAF) agent
keys in Vault, rotates them and retires old key sets.

A role holds an API identity (corp, email, API token). Copy a site's keys with
"write creds/<role>/sites/<site>", read them from the same path, rotate with
"write rotate/sites/<site>" and retire the non-primary sets with
"delete rotate/sites/<site>".

Hosts report the access key their agent runs under fleet/<role>/sites/<site>;
a retirement waits until no host still runs an old key. A role can rotate its
sites on a schedule (rotation_schedule) and retire old sets by itself
(auto_retire).
`

// operationPrefixSigsci starts the OpenAPI operation id of every path, as
// "aws" or "ldap" do for Vault's own engines.
const operationPrefixSigsci = "sigsci"

// forwardedOperation is an operation that writes storage: a performance
// standby or a performance secondary forwards it to the active node of the
// primary cluster, which alone writes the mount's replicated storage.
func forwardedOperation(callback framework.OperationFunc, attrs *framework.DisplayAttributes) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:                    callback,
		DisplayAttrs:                attrs,
		ForwardPerformanceStandby:   true,
		ForwardPerformanceSecondary: true,
	}
}

// Storage layout of a mount.
const (
	configStorageKey = "config"
	rolePrefix       = "role/"
	credsPrefix      = "creds/"
	copyRecordPrefix = "copy/" // copy/<role>: the state of the role's last copy of all sites
)

// getJSON decodes the storage entry at key, or returns nil if there is none.
// what names the entry in an error, such as: role "r".
func getJSON[T any](ctx context.Context, s logical.Storage, key, what string) (*T, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if entry == nil {
		return nil, nil
	}
	v := new(T)
	if err := entry.DecodeJSON(v); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", what, err)
	}
	return v, nil
}

// putJSON stores v as JSON at key; what names the entry in an error.
func putJSON(ctx context.Context, s logical.Storage, key, what string, v any) error {
	entry, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing %s: %w", what, err)
	}
	return nil
}

// walRollbackMinAge is how old a WAL entry must be before Vault's periodic
// rollback looks at it. It outlasts operationDeadline, the longest an
// operation holds its entry, so the rollback never completes an operation
// that another backend instance (the old process of a plugin reload, an
// active node not quite stopped) is still running; within one instance the
// site's lock already keeps them apart. aws and gcp use 5 minutes too.
const walRollbackMinAge = 5 * time.Minute

// fullSemverRe requires all three version numbers: go-version alone also
// takes "v1" as "v1.0.0", which would not match a registered "v1.0.0".
var fullSemverRe = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$`)

// NewFactory returns the logical.Factory of the engine. The version is
// reported to Vault as the plugin's running version and must be semver
// (for example "v0.1.0"), because Vault compares it with the version given
// at registration. The factory does no storage work: Vault also runs it
// without storage when the plugin is registered.
func NewFactory(pluginVersion string) (logical.Factory, error) {
	if _, err := version.NewSemver(pluginVersion); err != nil || !fullSemverRe.MatchString(pluginVersion) {
		return nil, fmt.Errorf("plugin version %q is not semver like v1.2.3", pluginVersion)
	}
	return func(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
		b := newBackend(pluginVersion, newSigsciClient)
		withView := *conf
		if conf.System != nil {
			withView.System = newCachedSystemView(conf.System, time.Now)
		}
		if err := b.Setup(ctx, &withView); err != nil {
			return nil, err
		}
		return b, nil
	}, nil
}

// backend is one mount of the engine.
type backend struct {
	*framework.Backend

	newClient clientFactory
	now       func() time.Time

	// roleLocks: writing or deleting a role takes its lock exclusively; a
	// copy, rotate or retire holds it shared, so the role can neither vanish
	// nor change corp while keys are being stored under it. siteLocks serialise every
	// operation on one corp/site (copy, rotate, retire, recovery). Lock order:
	// a role lock before site locks, never the other way round.
	roleLocks []*locksutil.LockEntry
	siteLocks []*locksutil.LockEntry

	wal *walIndex // this instance's view of the WAL (wal_index.go)

	clientsMu sync.Mutex
	clients   map[string]cachedClient
	memo      *entryMemo // the roles and the mount config, as last read

	configMu sync.Mutex // serialises the read-modify-write of the mount config
	auto     *automation
	// maxHostsPerSite bounds the host reports of one site.
	maxHostsPerSite int

	// copies of all sites: each role's last one, running in the background
	// under jobsCtx until done or until Clean cancels it.
	copiesMu   sync.Mutex
	copies     map[string]*copyJob
	jobsCtx    context.Context
	jobsCancel context.CancelFunc
	jobsWG     sync.WaitGroup

	// background work started by Initialize, stopped by Clean.
	bgMu      sync.Mutex
	bgCancel  context.CancelFunc
	bgWG      sync.WaitGroup
	recovered chan struct{} // closed when start-up recovery has finished
}

// String names the backend, and nothing it holds.
func (b *backend) String() string { return "plugin.backend" }

// Format keeps the cached roles and clients out of every fmt verb (see
// formatRedacted).
func (b *backend) Format(f fmt.State, verb rune) { formatRedacted(f, verb, b) }

func newBackend(pluginVersion string, newClient clientFactory) *backend {
	b := &backend{
		newClient: newClient,
		now:       time.Now,
		roleLocks: locksutil.CreateLocks(),
		siteLocks: locksutil.CreateLocks(),
		clients:   make(map[string]cachedClient),
		wal:       newWALIndex(),
		memo:      newEntryMemo(),
		copies:    make(map[string]*copyJob),
		recovered: make(chan struct{}),
		auto:      newAutomation(),

		maxHostsPerSite: defaultMaxHostsPerSite,
	}
	b.jobsCtx, b.jobsCancel = context.WithCancel(context.Background())
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{rolePrefix, credsPrefix},
			LocalStorage:    []string{framework.WALPrefix},
		},
		Paths: framework.PathAppend(
			b.pathConfig(),
			b.pathRoles(),
			b.pathCreds(),
			b.pathRotate(),
			b.pathFleet(),
		),
		InitializeFunc:    b.initialize,
		PeriodicFunc:      b.periodic,
		WALRollback:       b.walRollback,
		WALRollbackMinAge: walRollbackMinAge,
		Invalidate:        b.invalidate,
		Clean:             b.clean,
		RunningVersion:    pluginVersion,
	}
	return b
}

// initialize starts the recovery of operations that a crash interrupted.
// It returns at once; recovery runs in the background until done or until
// Clean stops it, and requests on a site wait for it through the site lock.
func (b *backend) initialize(_ context.Context, req *logical.InitializationRequest) error {
	b.bgMu.Lock()
	defer b.bgMu.Unlock()
	if b.bgCancel != nil {
		return nil // already initialised
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.bgCancel = cancel
	if !b.WriteSafeReplicationState() {
		close(b.recovered)
		return nil
	}
	b.bgWG.Add(1)
	go func() {
		defer b.bgWG.Done()
		defer close(b.recovered)
		b.recoverAll(ctx, req.Storage)
	}()
	return nil
}

// invalidate forgets what this node remembers of an entry that changed on
// another node: a role (and the API client built from it) or the mount config.
func (b *backend) invalidate(_ context.Context, key string) {
	if name, ok := strings.CutPrefix(key, rolePrefix); ok {
		b.roleChanged(name)
	}
	if key == configStorageKey {
		b.memo.forgetConfig()
	}
}

// roleChanged forgets the copy of a role and the API client built from it.
func (b *backend) roleChanged(name string) {
	b.memo.forgetRole(name)
	b.dropClient(name)
}

// clean stops background work and forgets cached clients.
func (b *backend) clean(_ context.Context) {
	b.bgMu.Lock()
	cancel := b.bgCancel
	b.bgMu.Unlock()
	if cancel != nil {
		cancel()
	}
	b.jobsCancel()
	b.bgWG.Wait()
	b.jobsWG.Wait()
	b.auto.stop()
	b.dropAllClients()
	b.memo.forgetAll()
}

// siteLockKey is the key of the lock that guards one site of one corp.
func siteLockKey(corp, site string) string {
	return corp + "/" + site
}

// lockSite takes the lock of one corp/site and returns its unlock.
func (b *backend) lockSite(corp, site string) func() {
	l := locksutil.LockForKey(b.siteLocks, siteLockKey(corp, site))
	l.Lock()
	return l.Unlock
}

// lockRole takes the write lock of one role and returns its unlock.
func (b *backend) lockRole(name string) func() {
	l := locksutil.LockForKey(b.roleLocks, name)
	l.Lock()
	return l.Unlock
}

// rlockRole takes the shared lock of one role and returns its unlock.
func (b *backend) rlockRole(name string) func() {
	l := locksutil.LockForKey(b.roleLocks, name)
	l.RLock()
	return l.RUnlock
}

// lockSites takes the locks of several sites of one corp in a fixed order
// (no deadlock with other multi-site lockers) and returns their unlock.
func (b *backend) lockSites(corp string, sites []string) func() {
	keys := make([]string, len(sites))
	for i, s := range sites {
		keys[i] = siteLockKey(corp, s)
	}
	locks := locksutil.LocksForKeys(b.siteLocks, keys)
	for _, l := range locks {
		l.Lock()
	}
	return func() {
		for i := len(locks) - 1; i >= 0; i-- {
			locks[i].Unlock()
		}
	}
}

// mountPath joins the request's mount point and a path inside the mount, for
// messages that tell the operator which command to run.
func mountPath(req *logical.Request, rel string) string {
	mount := "<mount>/"
	if req != nil && req.MountPoint != "" {
		mount = req.MountPoint
	}
	return mount + rel
}
