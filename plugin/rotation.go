package plugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// Rotation of a site's key sets (retirement is in retire.go).
//
// Rotate, under the site lock:
//  1. list the site's key sets at the API ("before");
//  2. write a WAL entry naming the site and "before";
//  3. create a key set at the API (it becomes primary);
//  4. complete: list again, whatever the create answered; the new set is
//     the one the create answered with if the list has it, or else the
//     primary set (as GET .../keys names it) if it is not in "before":
//     store it as primary and keep the old primary as non-primary. A
//     rotation deletes nothing: any other set it finds was made elsewhere
//     (another mount or Vault cluster, Terraform, a person in the
//     dashboard) and is reported as "untracked";
//  5. delete the WAL entry, unless nothing new is listed and the create may
//     still land (no answer, or a reported success): then the entry stays
//     for the periodic rollback to look again.
//
// The complete steps are idempotent and ask the API for the real state, so
// recovery after a crash (recovery.go) simply runs them again.

// finishTimeout bounds the work that completes a remote change once it may
// have happened (confirm, store, clean up), after the caller stopped waiting.
const finishTimeout = 2 * time.Minute

// createTimeout bounds a rotation's create, whatever the caller's deadline
// (a scheduled rotation has none).
const createTimeout = 90 * time.Second

// operationDeadline is the longest a running operation holds its WAL
// entry: a rotation's create, then the finishing steps. Recovery leaves a
// younger rotation of another instance alone while its set is not listed.
const operationDeadline = createTimeout + finishTimeout

// finishContext detaches ctx from the caller's cancellation (keeping its
// values) for the steps after a remote change: leaving them half done would
// only hand the work to recovery.
func finishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
}

// rotationResult is what completing a rotation found and did.
type rotationResult struct {
	rotated   bool        // a new primary set exists and is stored
	keys      *storedKeys // what is stored now (nil if nothing is)
	untracked []string    // listed sets this mount does not hold
}

// siteChange is what a rotation or retirement of one stored site works with.
type siteChange struct {
	role   *roleEntry
	stored *storedKeys
	client keysAPI
	// givenUp are the site's operations given up after pending_max_age,
	// reported (and deleted) once the new operation succeeded.
	givenUp []walRecord
}

// startSiteChange prepares a remote change of one stored site: it holds the
// role (shared, so the role can neither vanish nor change corp meanwhile)
// and the site's lock, completes any unfinished operation on the site, and
// loads the stored keys. On success the caller must call the returned unlock.
func (b *backend) startSiteChange(ctx context.Context, req *logical.Request, roleName, site string) (*siteChange, func(), error) {
	unlockRole := b.rlockRole(roleName)
	r, err := b.requireRole(ctx, req, roleName)
	if err != nil {
		unlockRole()
		return nil, nil, err
	}
	unlockSite := b.lockSite(r.Corp, site)
	unlock := func() { unlockSite(); unlockRole() }
	sc, err := b.loadSiteChange(ctx, req, roleName, r, site)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return sc, unlock, nil
}

// loadSiteChange completes the site's unfinished operations and loads its
// stored keys and the role's client. The caller holds the site's lock.
func (b *backend) loadSiteChange(ctx context.Context, req *logical.Request, roleName string, r *roleEntry, site string) (*siteChange, error) {
	givenUp, err := b.recoverPendingFor(ctx, req.Storage, r.Corp, site)
	if err != nil {
		return nil, err
	}
	stored, err := b.requireKeys(ctx, req, roleName, site)
	if err != nil {
		return nil, err
	}
	client, err := b.client(roleName, r)
	if err != nil {
		return nil, err
	}
	return &siteChange{role: r, stored: stored, client: client, givenUp: givenUp}, nil
}

// rotateSite rotates the keys of one stored site. The caller has checked
// that the role holds the site. A non-empty expected makes it a
// compare-and-swap: it rotates only if the stored primary (once any pending
// operation on the site is completed) is that access key.
func (b *backend) rotateSite(ctx context.Context, req *logical.Request, roleName, site, expected string) (*logical.Response, error) {
	sc, unlock, err := b.startSiteChange(ctx, req, roleName, site)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, client := sc.role, sc.client
	if err := checkExpectedPrimary(req, sc.stored, expected); err != nil {
		return nil, err
	}

	before, err := client.ListKeySets(ctx, r.Corp, site)
	if err != nil {
		return nil, upstreamError(fmt.Sprintf("listing the key sets of site %q", site), err)
	}
	if err := checkListHasPrimary(site, before); err != nil {
		return nil, logical.CodedError(http.StatusBadGateway, err.Error())
	}
	op := walOp{Role: roleName, Corp: r.Corp, Site: site, Before: accessKeys(before)}
	rec, err := b.putWAL(ctx, req.Storage, walKindRotate, &op)
	if err != nil {
		return nil, err
	}

	createCtx, cancelCreate := context.WithTimeout(ctx, createTimeout)
	created, createErr := client.CreateKeySet(createCtx, r.Corp, site)
	cancelCreate()
	var hint *sigsci.KeySet
	if createErr == nil {
		hint = &created
	}
	// The API may have changed now: finish even if the caller goes away.
	ctx, cancel := finishContext(ctx)
	defer cancel()
	res, err := b.completeRotation(ctx, req.Storage, client, op, hint)
	if err != nil {
		b.noteWALError(ctx, req.Storage, rec, err)
		b.Logger().Warn("rotation not confirmed; left for recovery", "site", site, "corp", r.Corp, "error", err)
		return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
			"the rotation of site %q could not be confirmed: %v; Vault completes it (or finds nothing to undo) automatically, before the next rotate or retire of this site at the latest",
			site, err))
	}
	if !res.rotated {
		return nil, b.rotationNotListed(ctx, req.Storage, rec, site, createErr)
	}

	resp := &logical.Response{Data: rotateData(roleName, res)}
	if err := b.deleteWAL(ctx, req.Storage, rec); err != nil {
		return nil, err
	}
	b.reportGivenUp(ctx, req.Storage, sc.givenUp, resp)
	b.rotationWarnings(ctx, req, resp, roleName, r.Corp, site, res.keys)
	return resp, nil
}

// rotationWarnings tells the operator what a rotation leaves to do: other
// roles that still hand out the old key, and old sets piling up.
func (b *backend) rotationWarnings(ctx context.Context, req *logical.Request, resp *logical.Response, roleName, corp, site string, keys *storedKeys) {
	if others, err := b.otherHolders(ctx, req.Storage, roleName, corp, site); err == nil && len(others) > 0 {
		resp.AddWarning(fmt.Sprintf("role(s) %s of the same corp also hold site %q and hand out the old key until copied again (vault write -f %s)",
			strings.Join(slices.Sorted(maps.Keys(others)), ", "), site, mountPath(req, "creds/<role>/sites/"+site)))
	}
	if n := len(keys.NonPrimary); n > 1 {
		resp.AddWarning(fmt.Sprintf("site %q now has %d non-primary key sets; retire them once hosts run the new key: vault delete %s",
			site, n, mountPath(req, "rotate/sites/"+site)))
	}
}

// checkExpectedPrimary refuses a compare-and-swap rotation (expected_primary)
// whose expected access key is no longer the stored primary.
func checkExpectedPrimary(req *logical.Request, stored *storedKeys, expected string) error {
	if expected == "" || stored.AccessKey == expected {
		return nil
	}
	return logical.CodedError(http.StatusPreconditionFailed, fmt.Sprintf(
		"the primary key set of site %q is %s, not the expected %s; it was rotated meanwhile: nothing changed (see vault read %s)",
		stored.Site, stored.AccessKey, expected, mountPath(req, "rotate/sites/"+stored.Site)))
}

// rotationNotListed answers a rotation whose new key set the API does not
// list (yet). Only a create the API refused ends the operation. A create
// that may have reached the API (no answer, a 5xx, the caller gone) or that
// the API reported as done (even if what followed failed) can still produce
// a set after the list: the WAL entry stays, so the periodic rollback looks
// again and stores the set if it appears, instead of leaving it orphaned.
func (b *backend) rotationNotListed(ctx context.Context, s logical.Storage, rec walRecord, site string, createErr error) error {
	if createRefused(createErr) {
		if err := b.deleteWAL(ctx, s, rec); err != nil {
			return err
		}
		return upstreamError(fmt.Sprintf("creating a key set for site %q", site), createErr)
	}
	const later = "stored keys left unchanged; Vault checks the site again and stores the set if it appears"
	if createErr != nil {
		b.noteWALError(ctx, s, rec, fmt.Errorf("creating a key set: %w", createErr))
		return upstreamError(fmt.Sprintf("creating a key set for site %q (%s)", site, later), createErr)
	}
	b.noteWALError(ctx, s, rec, errors.New("the API reported the create as done but lists no new primary key set"))
	return logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
		"the API reported success but lists no new primary key set for site %q; %s", site, later))
}

// createRefused reports whether the create itself was answered with an
// error status that leaves no doubt that no key set was made.
func createRefused(err error) bool {
	var apiErr *sigsci.APIError
	return errors.As(err, &apiErr) && apiErr.Method == http.MethodPost && !errors.Is(err, sigsci.ErrOutcomeUnknown)
}

// completeRotation makes Vault agree with the API after a key set was (or
// may have been) created for op. It is idempotent.
func (b *backend) completeRotation(ctx context.Context, s logical.Storage, client keysAPI, op walOp, hint *sigsci.KeySet) (rotationResult, error) {
	after, err := client.ListKeySets(ctx, op.Corp, op.Site)
	if err != nil {
		return rotationResult{}, fmt.Errorf("listing the key sets of site %q: %w", op.Site, err)
	}
	if err := checkListHasPrimary(op.Site, after); err != nil {
		return rotationResult{}, err
	}
	stored, err := b.loadKeys(ctx, s, op.Role, op.Site)
	if err != nil {
		return rotationResult{}, err
	}
	fresh := newKeySet(after, op.Before, hint)

	res := rotationResult{keys: stored}
	if fresh != nil {
		res.rotated = true
		if stored == nil || stored.AccessKey != fresh.AccessKey {
			ks, err := b.withSecret(ctx, client, op, *fresh, hint)
			if err != nil {
				return rotationResult{}, err
			}
			if stored == nil {
				stored = &storedKeys{Role: op.Role, Corp: op.Corp, Site: op.Site}
			}
			now := b.now()
			stored.promote(ks, now)
			stored.LastVaultRotation = now
			if err := b.putKeys(ctx, s, stored); err != nil {
				return rotationResult{}, err
			}
			res.keys = stored
		}
	}
	res.untracked = untrackedSets(after, res.keys)
	return res, nil
}

// newKeySet finds the set a rotation created among those the API lists now
// but did not list before: the one the create answered with, if it is
// listed and its secret is known (the list or the create carries it, or it
// is the primary), or else the primary one. nil if there is none.
func newKeySet(after []sigsci.KeySet, before []string, hint *sigsci.KeySet) *sigsci.KeySet {
	var fresh *sigsci.KeySet
	for i := range after {
		k := &after[i]
		if slices.Contains(before, k.AccessKey) {
			continue
		}
		if hint != nil && k.AccessKey == hint.AccessKey && (k.Primary || k.SecretKey != "" || hint.SecretKey != "") {
			return k
		}
		if k.Primary && fresh == nil {
			fresh = k
		}
	}
	return fresh
}

// untrackedSets lists the access keys of the listed sets that the stored
// keys do not hold: sets made elsewhere, which this mount never deletes.
func untrackedSets(sets []sigsci.KeySet, stored *storedKeys) []string {
	out := []string{}
	for _, k := range sets {
		if !stored.tracks(k.AccessKey) {
			out = append(out, k.AccessKey)
		}
	}
	return out
}

// withSecret returns the new primary set with its secret: from the list, from
// the create answer, or from the API's primary keys.
func (b *backend) withSecret(ctx context.Context, client keysAPI, op walOp, fresh sigsci.KeySet, hint *sigsci.KeySet) (sigsci.KeySet, error) {
	if fresh.SecretKey != "" {
		return fresh, nil
	}
	if hint != nil && hint.AccessKey == fresh.AccessKey && hint.SecretKey != "" {
		return *hint, nil
	}
	primary, err := client.PrimaryKeys(ctx, op.Corp, op.Site)
	if err != nil {
		return sigsci.KeySet{}, fmt.Errorf("reading the primary keys of site %q: %w", op.Site, err)
	}
	if primary.AccessKey != fresh.AccessKey || primary.SecretKey == "" {
		return sigsci.KeySet{}, fmt.Errorf("the primary key set of site %q changed while it was being rotated", op.Site)
	}
	return primary, nil
}

func rotateData(roleName string, res rotationResult) map[string]interface{} {
	data := keysMetadata(res.keys)
	data["role"] = roleName
	data["untracked"] = res.untracked
	return data
}

// checkListHasPrimary refuses to act on a list of key sets without a primary
// set. A site always has one, so such a list is a broken answer (an empty
// page, a changed shape): read as the truth, it would make every new set look
// like a stray to delete, and every stored set look retired.
func checkListHasPrimary(site string, sets []sigsci.KeySet) error {
	if primaryOf(sets) == nil {
		return fmt.Errorf("the API lists no primary key set for site %q (%d set(s) listed); nothing changed", site, len(sets))
	}
	return nil
}

func primaryOf(sets []sigsci.KeySet) *sigsci.KeySet {
	for i := range sets {
		if sets[i].Primary {
			return &sets[i]
		}
	}
	return nil
}

func accessKeys(sets []sigsci.KeySet) []string {
	out := make([]string, 0, len(sets))
	for _, k := range sets {
		out = append(out, k.AccessKey)
	}
	return out
}
