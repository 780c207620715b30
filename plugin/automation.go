package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The mount's background duties: scheduled rotations, auto_retire and the
// tidy of hosts not heard from for fleet_forget_after. They run only where
// writes are safe (the active node of the primary cluster).
//
// Vault's rollback manager calls PeriodicFunc about once a minute while
// holding Vault's state lock; periodic starts a pass in the background and
// returns at once, so no API call is made under that lock. A pass still
// running at the next tick is left to finish; Clean stops it.

// fleetTidyInterval is how often the reports are searched for hosts to forget.
const fleetTidyInterval = time.Hour

// automation is the state of the background passes.
type automation struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	running  bool
	lastTidy time.Time
	logged   map[string]time.Time // message key -> when it was last logged
}

func newAutomation() *automation {
	ctx, cancel := context.WithCancel(context.Background())
	return &automation{ctx: ctx, cancel: cancel, logged: map[string]time.Time{}}
}

// stop cancels a running pass and waits for it.
func (a *automation) stop() {
	a.cancel()
	a.wg.Wait()
}

// once reports whether a message about key is due: the first time, and
// then at most once per every.
func (a *automation) once(key string, every time.Duration, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if last, ok := a.logged[key]; ok && now.Sub(last) < every {
		return false
	}
	a.logged[key] = now
	return true
}

// forget makes the next message about key due at once.
func (a *automation) forget(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.logged, key)
}

// tidyDue reports whether the fleet tidy should run now, and if so counts
// it as run.
func (a *automation) tidyDue(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.lastTidy.IsZero() && now.Sub(a.lastTidy) < fleetTidyInterval {
		return false
	}
	a.lastTidy = now
	return true
}

// periodic is the backend's PeriodicFunc.
func (b *backend) periodic(_ context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	a := b.auto
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running || a.ctx.Err() != nil {
		return nil
	}
	a.running = true
	a.wg.Add(1)
	pass := &logical.Request{Storage: req.Storage, MountPoint: req.MountPoint}
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			a.running = false
			a.mu.Unlock()
		}()
		b.automationPass(a.ctx, pass)
	}()
	return nil
}

// automationPass does the duties of one tick, as of one moment.
func (b *backend) automationPass(ctx context.Context, req *logical.Request) {
	now := b.now()
	if b.auto.tidyDue(now) {
		b.tidyFleet(ctx, req.Storage, now)
	}
	roles, err := b.listRoles(ctx, req.Storage)
	if err != nil {
		b.Logger().Warn("scheduled rotation and auto_retire could not list the roles", "error", err)
		return
	}
	for _, name := range roles {
		if ctx.Err() != nil {
			return
		}
		b.automateRole(ctx, req, name, now)
	}
}

func (b *backend) automateRole(ctx context.Context, req *logical.Request, name string, now time.Time) {
	r, err := b.loadRole(ctx, req.Storage, name)
	if err != nil {
		b.Logger().Warn("scheduled rotation and auto_retire could not read a role", "role", name, "error", err)
		return
	}
	if r == nil || (!r.active() && !r.autoRetire()) {
		return
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		b.Logger().Warn("scheduled rotation and auto_retire could not read the mount config", "error", err)
		return
	}
	sites, err := b.storedSites(ctx, req.Storage, name)
	if err != nil {
		b.Logger().Warn("scheduled rotation and auto_retire could not list the role's sites", "role", name, "error", err)
		return
	}
	plan := r.plan(now)
	for i, site := range sites {
		if ctx.Err() != nil {
			return
		}
		b.automateSite(ctx, req, r, name, site, cfg, plan, i, len(sites), now)
	}
}

// automateSite retires the site's old sets if auto_retire may, then
// rotates it if the schedule says so and nothing waits for retirement.
func (b *backend) automateSite(ctx context.Context, req *logical.Request, r *roleEntry, name, site string, cfg *mountConfig, plan schedulePlan, i, n int, now time.Time) {
	log := b.Logger().With("role", name, "site", site)
	keys, err := b.loadKeys(ctx, req.Storage, name, site)
	if err != nil || keys == nil {
		return
	}
	a, err := b.loadSiteAutomation(ctx, req.Storage, r, keys, cfg, plan, i, n, now)
	if err != nil {
		log.Warn("scheduled rotation and auto_retire could not read the site's fleet", "error", err)
		return
	}
	every, tag := r.window(), name+"/"+site

	if why := a.retireWaits(); why != "" {
		if b.auto.once("retire-wait "+tag, every, now) {
			log.Info("auto_retire waits", "reason", why)
		}
	} else if r.autoRetire() && len(keys.NonPrimary) > 0 {
		b.autoRetire(ctx, req, name, site, every, now)
		if keys, err = b.loadKeys(ctx, req.Storage, name, site); err != nil || keys == nil {
			return
		}
	}

	if !a.plan.due {
		return
	}
	if len(keys.NonPrimary) > 0 {
		if b.auto.once("rotate-wait "+tag, every, now) {
			log.Info("scheduled rotation skipped: the site's non-primary key sets wait for retirement",
				"non_primary", strings.Join(keys.nonPrimaryAccessKeys(), ","))
		}
		return
	}
	// A compare-and-swap on the primary the pass decided on: when the
	// rotation first completes one that was interrupted (a crash, a failover,
	// a plugin reload), that one is the window's rotation, and the site is
	// not rotated twice.
	resp, err := b.rotateSite(ctx, req, name, site, keys.AccessKey)
	if isCodedStatus(err, http.StatusPreconditionFailed) {
		log.Info("scheduled rotation: an interrupted rotation of the site was completed first and counts as this one")
		return
	}
	if err != nil {
		if b.auto.once("rotate-error "+tag, every, now) {
			log.Warn("scheduled rotation failed; retried while its window is open", "error", err)
		}
		return
	}
	b.auto.forget("rotate-error " + tag)
	log.Info("scheduled rotation", "access_key", resp.Data[fieldAccessKey])
	for _, w := range resp.Warnings {
		log.Warn("scheduled rotation: " + w)
	}
}

// autoRetire retires a site's old sets once the guard allowed it.
func (b *backend) autoRetire(ctx context.Context, req *logical.Request, name, site string, every time.Duration, now time.Time) {
	log := b.Logger().With("role", name, "site", site)
	tag := name + "/" + site
	resp, err := b.retireSite(ctx, req, name, site, false)
	if err != nil {
		if b.auto.once("retire-error "+tag, every, now) {
			log.Warn("auto_retire could not retire the non-primary key sets; tried again in a minute", "error", err)
		}
		return
	}
	b.auto.forget("retire-wait " + tag)
	b.auto.forget("retire-error " + tag)
	b.auto.forget("rotate-wait " + tag)
	log.Info("auto_retire retired the non-primary key sets", "retired", resp.Data["retired"])
}

// tidyFleet deletes the reports of hosts not heard from for
// fleet_forget_after, of every role and site (including roles and sites
// that are gone).
func (b *backend) tidyFleet(ctx context.Context, s logical.Storage, now time.Time) {
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		b.Logger().Warn("fleet tidy could not read the mount config", "error", err)
		return
	}
	forgotten := 0
	err = walkReports(ctx, s, func(role, site, host string, r hostReport) error {
		if now.Sub(r.ReportedAt) < cfg.forgetAfter() {
			return nil
		}
		if err := s.Delete(ctx, fleetKey(role, site, host)); err != nil {
			return fmt.Errorf("forgetting %s: %w", reportWhat(role, site, host), err)
		}
		forgotten++
		return nil
	})
	if err != nil {
		b.Logger().Warn("fleet tidy stopped; it runs again within the hour", "error", err, "forgotten", forgotten)
		return
	}
	if forgotten > 0 {
		b.Logger().Info("forgot hosts not heard from for fleet_forget_after", "hosts", forgotten, "fleet_forget_after", cfg.forgetAfter())
	}
}

// isCodedStatus reports whether err is a logical.CodedError with status.
func isCodedStatus(err error, status int) bool {
	var coded logical.HTTPCodedError
	return errors.As(err, &coded) && coded.Code() == status
}
