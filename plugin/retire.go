package plugin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// Retirement of a site's non-primary key sets.
//
// Retire, under the site lock:
//  1. list the key sets; refuse if the API's primary is not the stored one;
//  2. write a WAL entry naming the sets to delete: the listed non-primary
//     sets this mount stored as its own. Any other set was made elsewhere
//     (another mount, Terraform, a person): it is left alone and reported
//     as "untracked";
//  3. complete: delete each (a 404 means already gone), then remove every
//     deleted or no-longer-listed set from storage;
//  4. delete the WAL entry.
//
// completeRetirement is idempotent and asks the API for the real state, so
// recovery after a crash (recovery.go) simply runs it again.

// retireResult is what completing a retirement did.
type retireResult struct {
	retired   []string
	keys      *storedKeys
	untracked []string // listed sets this mount does not hold
}

// retireSite deletes the non-primary key sets of one stored site at the API
// and from Vault, once the fleet guard allows it or when forced.
func (b *backend) retireSite(ctx context.Context, req *logical.Request, roleName, site string, force bool) (*logical.Response, error) {
	sc, unlock, err := b.startSiteChange(ctx, req, roleName, site)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, stored, client := sc.role, sc.stored, sc.client
	forced, err := b.checkFleetAllowsRetire(ctx, req, stored, force)
	if err != nil {
		return nil, err
	}
	answer := func(res retireResult) *logical.Response {
		resp := &logical.Response{Data: retireData(roleName, res)}
		if forced != "" {
			resp.AddWarning(forced)
		}
		b.reportGivenUp(ctx, req.Storage, sc.givenUp, resp)
		return resp
	}

	sets, err := client.ListKeySets(ctx, r.Corp, site)
	if err != nil {
		return nil, upstreamError(fmt.Sprintf("listing the key sets of site %q", site), err)
	}
	if err := checkPrimaryMatches(req, roleName, stored, sets); err != nil {
		return nil, err
	}
	var retire []string
	for _, k := range sets {
		if !k.Primary && k.AccessKey != stored.AccessKey && stored.tracks(k.AccessKey) {
			retire = append(retire, k.AccessKey)
		}
	}
	if err := b.checkNoOtherRoleHandsOut(ctx, req, roleName, r.Corp, site, retire); err != nil {
		return nil, err
	}
	op := walOp{Role: roleName, Corp: r.Corp, Site: site, Primary: stored.AccessKey, Retire: retire}
	if len(retire) == 0 {
		res, err := b.completeRetirement(ctx, req.Storage, client, op, sets)
		if err != nil {
			return nil, err
		}
		return answer(res), nil
	}

	rec, err := b.putWAL(ctx, req.Storage, walKindRetire, &op)
	if err != nil {
		return nil, err
	}
	ctx, cancel := finishContext(ctx)
	defer cancel()
	res, retireErr := b.completeRetirement(ctx, req.Storage, client, op, sets)
	// Progress is stored either way; a failed retirement is re-run by the
	// operator, not replayed by recovery.
	if err := b.deleteWAL(ctx, req.Storage, rec); err != nil {
		return nil, err
	}
	if retireErr != nil {
		done := "none"
		if len(res.retired) > 0 {
			done = strings.Join(res.retired, ", ")
		}
		return nil, upstreamError(fmt.Sprintf("retiring the non-primary key sets of site %q (retired so far: %s; run the delete again)", site, done), retireErr)
	}
	return answer(res), nil
}

// checkFleetAllowsRetire applies the retirement guard (guard.go) to a
// site. It refuses while the guard does, unless forced; a forced
// retirement is logged and answered with the warning it returns.
func (b *backend) checkFleetAllowsRetire(ctx context.Context, req *logical.Request, stored *storedKeys, force bool) (string, error) {
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return "", err
	}
	f, err := b.loadSiteFleet(ctx, req.Storage, stored, cfg, b.now())
	if err != nil {
		return "", err
	}
	v := f.verdict
	if v.allowed {
		return "", nil
	}
	if !force {
		return "", logical.CodedError(http.StatusConflict, fmt.Sprintf(
			"retiring the non-primary key sets of site %q is refused: %s; force=true overrides: vault delete %s force=true",
			stored.Site, v.text(), mountPath(req, retirePath(req, stored.Site))))
	}
	b.Logger().Warn("retiring with force=true although the fleet guard refuses",
		"role", stored.Role, "site", stored.Site, "reason", v.reason)
	return "retired with force=true although " + v.reason, nil
}

// retirePath is the path to name in a hint about retiring a site: the one
// the request used, if it was a retirement.
func retirePath(req *logical.Request, site string) string {
	if strings.HasPrefix(req.Path, "rotate/") {
		return req.Path
	}
	return "rotate/sites/" + site
}

// checkPrimaryMatches refuses a retirement when the API's primary set is not
// the one Vault hands out: retiring would kill the key hosts are running.
func checkPrimaryMatches(req *logical.Request, roleName string, stored *storedKeys, sets []sigsci.KeySet) error {
	primary := primaryOf(sets)
	if primary == nil {
		return logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
			"the API lists no primary key set for site %q; nothing retired", stored.Site))
	}
	if primary.AccessKey != stored.AccessKey {
		return logical.CodedError(http.StatusConflict, fmt.Sprintf(
			"the API's primary key set of site %q (%s) is not the one Vault stores (%s); copy it first with: vault write -f %s, then retire",
			stored.Site, primary.AccessKey, stored.AccessKey, mountPath(req, "creds/"+roleName+"/sites/"+stored.Site)))
	}
	return nil
}

// checkNoOtherRoleHandsOut refuses a retirement that would delete the key
// another role of the same corp still hands out for the site as primary.
func (b *backend) checkNoOtherRoleHandsOut(ctx context.Context, req *logical.Request, roleName, corp, site string, retire []string) error {
	others, err := b.otherHolders(ctx, req.Storage, roleName, corp, site)
	if err != nil {
		return err
	}
	for _, other := range slices.Sorted(maps.Keys(others)) {
		if k := others[other]; slices.Contains(retire, k.AccessKey) {
			return logical.CodedError(http.StatusConflict, fmt.Sprintf(
				"role %q still hands out key set %s of site %q, which retiring would delete; copy it again first with: vault write -f %s",
				other, k.AccessKey, site, mountPath(req, "creds/"+other+"/sites/"+site)))
		}
	}
	return nil
}

// errRetireNotConfirmed marks a DELETE the API answered (with success or a
// 404) while it still lists the set: retrying the same call cannot help.
var errRetireNotConfirmed = errors.New("retirement not confirmed")

// completeRetirement deletes op's sets at the API (skipping any primary and
// any already gone), lists the sets again to confirm which are gone, and
// drops the sets the API no longer lists from storage. A DELETE answered
// with success or 404 does not count: only the list does. sets is the API's
// current list, or nil to ask for it. It is idempotent.
func (b *backend) completeRetirement(ctx context.Context, s logical.Storage, client keysAPI, op walOp, sets []sigsci.KeySet) (retireResult, error) {
	if sets == nil {
		var err error
		if sets, err = client.ListKeySets(ctx, op.Corp, op.Site); err != nil {
			return retireResult{}, fmt.Errorf("listing the key sets of site %q: %w", op.Site, err)
		}
	}
	if err := checkListHasPrimary(op.Site, sets); err != nil {
		return retireResult{}, err
	}
	answered, deleteErr := b.deleteKeySets(ctx, client, op, indexKeySets(sets))
	if len(answered) > 0 || deleteErr != nil {
		after, err := client.ListKeySets(ctx, op.Corp, op.Site)
		if err != nil {
			return retireResult{retired: []string{}}, errors.Join(deleteErr,
				fmt.Errorf("listing the key sets of site %q to confirm the retirement: %w", op.Site, err))
		}
		if err := checkListHasPrimary(op.Site, after); err != nil {
			return retireResult{retired: []string{}}, errors.Join(deleteErr, err)
		}
		sets = after
	}
	live := indexKeySets(sets)

	retired := []string{}
	for _, accessKey := range op.Retire {
		if _, listed := live[accessKey]; !listed {
			retired = append(retired, accessKey)
		}
	}
	deleteErr = errors.Join(deleteErr, notConfirmed(op.Site, answered, live))

	stored, err := b.loadKeys(ctx, s, op.Role, op.Site)
	if err != nil {
		return retireResult{retired: retired}, errors.Join(deleteErr, err)
	}
	if stored != nil {
		gone := func(r keyRecord) bool {
			_, stillLive := live[r.AccessKey]
			return !stillLive
		}
		if stored.dropNonPrimary(gone, b.now()) {
			if err := b.putKeys(ctx, s, stored); err != nil {
				return retireResult{retired: retired}, errors.Join(deleteErr, err)
			}
		}
	}
	res := retireResult{retired: retired, keys: stored, untracked: []string{}}
	if stored != nil {
		stillLive := slices.DeleteFunc(slices.Clone(sets), func(k sigsci.KeySet) bool {
			_, ok := live[k.AccessKey]
			return !ok
		})
		res.untracked = untrackedSets(stillLive, stored)
	}
	return res, deleteErr
}

// deleteKeySets sends the DELETE of each of op's listed, non-primary sets and
// returns what the API answered for each it answered with success or 404
// (access key -> "" or the 404 error); it stops at the first other failure.
func (b *backend) deleteKeySets(ctx context.Context, client keysAPI, op walOp, live map[string]sigsci.KeySet) (map[string]error, error) {
	answered := map[string]error{}
	for _, accessKey := range op.Retire {
		k, listed := live[accessKey]
		if !listed || k.Primary || accessKey == op.Primary {
			continue // gone already, or a primary set, which is never deleted
		}
		err := client.DeleteKeySet(ctx, op.Corp, op.Site, accessKey)
		if err != nil && !sigsci.IsNotFound(err) {
			return answered, err
		}
		answered[accessKey] = err
	}
	return answered, nil
}

// notConfirmed reports the sets whose DELETE was answered while the API
// still lists them, or nil.
func notConfirmed(site string, answered map[string]error, live map[string]sigsci.KeySet) error {
	var errs []error
	for _, accessKey := range slices.Sorted(maps.Keys(answered)) {
		if _, listed := live[accessKey]; !listed {
			continue
		}
		answer := "accepted"
		if answered[accessKey] != nil {
			answer = "answered 404 Not Found to"
		}
		errs = append(errs, fmt.Errorf("%w: the API %s the DELETE of key set %s of site %q but still lists it (is the API's DELETE route the one this engine assumes?)",
			errRetireNotConfirmed, answer, accessKey, site))
	}
	return errors.Join(errs...)
}

func indexKeySets(sets []sigsci.KeySet) map[string]sigsci.KeySet {
	out := make(map[string]sigsci.KeySet, len(sets))
	for _, k := range sets {
		out[k.AccessKey] = k
	}
	return out
}

func retireData(roleName string, res retireResult) map[string]interface{} {
	data := map[string]interface{}{
		"role":      roleName,
		"retired":   res.retired,
		"untracked": res.untracked,
	}
	if res.keys != nil {
		data["site"] = res.keys.Site
		data["corp"] = res.keys.Corp
		data[fieldAccessKey] = res.keys.AccessKey
		data["non_primary_access_keys"] = res.keys.nonPrimaryAccessKeys()
	}
	return data
}
