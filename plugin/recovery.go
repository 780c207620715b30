package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// Recovery of operations that a crash, a plugin reload or a change of
// active node interrupted. Three paths complete a WAL entry, each under the
// site's lock:
//
//   - Vault's periodic rollback (walRollback), for an entry older than
//     walRollbackMinAge, which outlasts any operation still running;
//   - start-up recovery (recoverAll) on the node that becomes active;
//   - the next rotate or retire of the same site (recoverPendingFor).
//
// The last two may meet an entry whose operation another backend instance
// is still running (the old process of a reload, or an active node that
// has not quite stopped). A rotation of another instance younger than
// operationDeadline is left alone unless its new set is already at the API
// (then its create is over and storing the set is safe); a retirement only
// deletes the sets it named, so completing it twice is harmless.
//
// An entry older than pending_max_age is given up: it no longer holds the
// site up and is not acted upon, but it stays listed in the rotation status
// until the next successful rotate or retire of the site reports it.

var (
	// errMayStillRun keeps an entry whose operation may still be running.
	errMayStillRun = errors.New("the operation may still be running in another instance of the plugin")
	// errGivenUp keeps an entry given up after pending_max_age.
	errGivenUp = errors.New("given up after pending_max_age; reported by the next rotate or retire of the site")
	// errWritesNotSafe keeps a WAL entry on a node where writes are not
	// safe. It wraps logical.ErrReadOnly, which Vault's rollback manager
	// does not log as a failure: the active node of the primary cluster
	// does the work.
	errWritesNotSafe = fmt.Errorf("WAL rollback left to the active node of the primary cluster: %w", logical.ErrReadOnly)
)

// walRollback is Vault's periodic rollback of a WAL entry old enough to
// belong to an interrupted operation. Returning nil lets the framework
// delete the entry; an error keeps it for the next round. Where writes are
// not safe (a performance standby or secondary) it does nothing and keeps
// the entry.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data interface{}) error {
	if !b.WriteSafeReplicationState() {
		return errWritesNotSafe
	}
	if kind != walKindRotate && kind != walKindRetire {
		b.Logger().Warn("dropping WAL entry of unknown kind", "kind", kind)
		return nil
	}
	op, err := decodeWALOp(data)
	if err != nil {
		b.Logger().Warn("dropping unreadable WAL entry", "kind", kind, "error", err)
		return nil
	}
	defer b.lockSite(op.Corp, op.Site)()
	rec, ok, err := b.pendingWAL(ctx, req.Storage, op.OpID)
	if err != nil {
		return err
	}
	if !ok {
		return nil // completed by a request or by start-up recovery meanwhile
	}
	return b.completeWAL(ctx, req.Storage, rec, false)
}

// recoverAll completes, at start-up, every operation a crash interrupted,
// except a rotation that may still be running elsewhere. Failures are
// logged; the periodic rollback retries them.
func (b *backend) recoverAll(ctx context.Context, s logical.Storage) {
	records, err := b.indexedWAL(ctx, s, nil)
	if err != nil {
		b.Logger().Error("start-up recovery could not list WAL entries", "error", err)
		return
	}
	for _, rec := range records {
		if ctx.Err() != nil {
			return
		}
		b.recoverOne(ctx, s, rec)
	}
}

func (b *backend) recoverOne(ctx context.Context, s logical.Storage, rec walRecord) {
	defer b.lockSite(rec.op.Corp, rec.op.Site)()
	rec, ok, err := b.pendingWAL(ctx, s, rec.op.OpID)
	if err != nil || !ok {
		return
	}
	err = b.completeWAL(ctx, s, rec, true)
	switch {
	case err == nil, errors.Is(err, errGivenUp):
	case errors.Is(err, errMayStillRun):
		b.Logger().Info("left a rotation that may still be running elsewhere to the periodic rollback",
			"site", rec.op.Site, "corp", rec.op.Corp, "started", rec.started().Format(time.RFC3339))
	default:
		b.Logger().Warn("could not complete an interrupted operation; the periodic rollback retries it",
			"kind", rec.kind, "site", rec.op.Site, "corp", rec.op.Corp, "error", err)
	}
}

// recoverPendingFor completes the unfinished operations of one site before
// a new operation on it starts, and returns those given up (for the new
// operation to report once it succeeded). The caller holds the site lock.
func (b *backend) recoverPendingFor(ctx context.Context, s logical.Storage, corp, site string) ([]walRecord, error) {
	records, err := b.indexedWAL(ctx, s, func(op walOp) bool { return op.Corp == corp && op.Site == site })
	if err != nil {
		return nil, err
	}
	var givenUp []walRecord
	for _, rec := range records {
		rec, ok, err := b.pendingWAL(ctx, s, rec.op.OpID)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		err = b.completeWAL(ctx, s, rec, true)
		switch {
		case err == nil:
		case errors.Is(err, errGivenUp):
			givenUp = append(givenUp, rec)
		case errors.Is(err, errMayStillRun):
			return nil, logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf(
				"a rotation of site %q started %s ago may still be running in another instance of the plugin (after a plugin reload or a change of active node); Vault completes it at most %s after its start; retry then",
				site, b.opAge(rec).Round(time.Second), walRollbackMinAge+time.Minute))
		default:
			return nil, logical.CodedError(http.StatusServiceUnavailable, fmt.Sprintf(
				"an earlier %s of site %q is unfinished and could not be completed yet: %v; retry later (it stops holding the site up after pending_max_age)",
				operationName(rec.kind), site, err))
		}
	}
	return givenUp, nil
}

// completeWAL finishes one interrupted operation and deletes its WAL entry.
// The caller holds the site lock. With othersMayRun, a rotation another
// instance may still be running is left alone (errMayStillRun). An entry
// that can never be completed (its role is gone, or the site no longer
// exists at the API) is dropped with a warning; an entry past
// pending_max_age is given up (errGivenUp); any other error means "try
// again later" and is kept in the entry as its last error.
func (b *backend) completeWAL(ctx context.Context, s logical.Storage, rec walRecord, othersMayRun bool) error {
	op := rec.op
	if !op.GivenUpAt.IsZero() {
		return errGivenUp
	}
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		return err
	}
	if b.opAge(rec) > cfg.pendingMaxAge() {
		return b.giveUp(ctx, s, rec, cfg.pendingMaxAge())
	}
	r, err := b.loadRole(ctx, s, op.Role)
	if err != nil {
		return err
	}
	if r == nil || r.Corp != op.Corp {
		b.Logger().Warn("dropping an unfinished operation whose role no longer exists for its corp; check the site's key sets at the API",
			"kind", rec.kind, "role", op.Role, "corp", op.Corp, "site", op.Site)
		return b.deleteWAL(ctx, s, rec)
	}
	client, err := b.client(op.Role, r)
	if err != nil {
		return err
	}
	stillRunning := rec.kind == walKindRotate && othersMayRun && b.mayStillRun(rec)
	if rec.kind == walKindRotate {
		err = b.recoverRotation(ctx, s, client, rec, stillRunning)
	} else {
		err = b.recoverRetirement(ctx, s, client, rec)
	}
	if err != nil {
		// The entry of a rotation that may still delete it is not written
		// to: brought back after its end, its stale "before" could make a
		// later recovery store another mount's set.
		if !stillRunning {
			b.noteWALError(ctx, s, rec, err)
		}
		return err
	}
	return b.deleteWAL(ctx, s, rec)
}

// mayStillRun reports whether another backend instance may still be running
// the operation: this instance did not write it, and it is younger than
// the longest an operation holds its entry.
func (b *backend) mayStillRun(rec walRecord) bool {
	return !b.wal.isOwn(rec.op.OpID) && b.opAge(rec) < operationDeadline
}

// recoverRotation completes an interrupted rotation; nil means done (the
// entry may go). If stillRunning and no new set is listed, the create may
// still be in flight: errMayStillRun.
func (b *backend) recoverRotation(ctx context.Context, s logical.Storage, client keysAPI, rec walRecord, stillRunning bool) error {
	op := rec.op
	res, err := b.completeRotation(ctx, s, client, op, nil)
	if sigsci.IsNotFound(err) {
		b.Logger().Warn("dropping an unfinished rotation of a site the API no longer has", "corp", op.Corp, "site", op.Site)
		return nil
	}
	if err != nil {
		return err
	}
	if !res.rotated && stillRunning {
		return errMayStillRun
	}
	b.Logger().Info("completed an interrupted rotation", "corp", op.Corp, "site", op.Site, "rotated", res.rotated,
		"untracked", strings.Join(res.untracked, ","))
	return nil
}

// recoverRetirement completes an interrupted retirement; nil means done or
// refused for good by the API (the entry may go).
func (b *backend) recoverRetirement(ctx context.Context, s logical.Storage, client keysAPI, rec walRecord) error {
	op := rec.op
	res, err := b.completeRetirement(ctx, s, client, op, nil)
	if err != nil && !isPermanentAPIError(err) && !errors.Is(err, errRetireNotConfirmed) {
		return err
	}
	if err != nil {
		b.Logger().Warn("gave up an interrupted retirement the API refuses; run the delete again",
			"corp", op.Corp, "site", op.Site, "error", err)
	} else {
		b.Logger().Info("completed an interrupted retirement", "corp", op.Corp, "site", op.Site, "retired", len(res.retired))
	}
	return nil
}

// giveUp marks an entry older than pending_max_age as given up, and logs it
// once: from now on it holds nothing up and is only listed.
func (b *backend) giveUp(ctx context.Context, s logical.Storage, rec walRecord, maxAge time.Duration) error {
	rec.op.GivenUpAt = b.now().UTC()
	if err := b.rewriteWAL(ctx, s, rec); err != nil {
		return err
	}
	b.Logger().Warn("gave up an unfinished operation after pending_max_age; it no longer holds the site up and stays listed in the site's rotation status; check the site's key sets at the API",
		"kind", rec.kind, "role", rec.op.Role, "corp", rec.op.Corp, "site", rec.op.Site,
		"started", rec.started().Format(time.RFC3339), "pending_max_age", maxAge, "last_error", rec.op.LastError)
	return errGivenUp
}

// reportGivenUp deletes the entries given up on a site once a new operation
// on it succeeded, and reports each in its answer.
func (b *backend) reportGivenUp(ctx context.Context, s logical.Storage, givenUp []walRecord, resp *logical.Response) {
	for _, rec := range givenUp {
		if err := b.deleteWAL(ctx, s, rec); err != nil {
			b.Logger().Warn("could not delete a given-up operation", "site", rec.op.Site, "error", err)
			continue
		}
		last := rec.op.LastError
		if last == "" {
			last = "none recorded"
		}
		resp.AddWarning(fmt.Sprintf(
			"Vault gave up an unfinished %s of site %q started %s (last error: %s) after pending_max_age; if it changed the API, any key set it left is listed under untracked",
			operationName(rec.kind), rec.op.Site, rec.started().Format(time.RFC3339), last))
	}
}
