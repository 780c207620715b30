package plugin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// storedKeys is what Vault holds for one site of one role: the primary key
// set, and the older sets that are still live at the API until retired.
type storedKeys struct {
	Role              string      `json:"role"`
	Corp              string      `json:"corp"`
	Site              string      `json:"site"`
	AccessKey         string      `json:"access_key"`
	SecretKey         string      `json:"secret_key"`
	Created           time.Time   `json:"created"`
	LastVaultRotation time.Time   `json:"last_vault_rotation,omitzero"`
	NonPrimary        []keyRecord `json:"non_primary,omitempty"`
	// Retired remembers the access keys (never the secrets) of the newest
	// retired sets, so that a host still reporting one is recognised as a
	// host on a dead key rather than refused as a stranger.
	Retired []retiredKey `json:"retired,omitempty"`
}

// keyRecord is a non-primary key set kept until it is retired.
type keyRecord struct {
	AccessKey string    `json:"access_key"`
	SecretKey string    `json:"secret_key"`
	Stored    time.Time `json:"stored"`
	// DemotedAt is when the set stopped being primary; zero for sets stored
	// before it was recorded.
	DemotedAt time.Time `json:"demoted_at,omitzero"`
}

// retiredKey is the access key of a retired set.
type retiredKey struct {
	AccessKey string    `json:"access_key"`
	RetiredAt time.Time `json:"retired_at"`
}

// maxRetiredKeys bounds the retired access keys a site remembers.
const maxRetiredKeys = 10

// String keeps secrets out of any formatted output.
func (k storedKeys) String() string {
	return fmt.Sprintf("keys{role=%s corp=%s site=%s access_key=%s secret_key=<redacted> non_primary=%d}",
		k.Role, k.Corp, k.Site, k.AccessKey, len(k.NonPrimary))
}

// Format keeps secrets out of every fmt verb.
func (k storedKeys) Format(f fmt.State, verb rune) { formatRedacted(f, verb, k) }

// String keeps the secret out of any formatted output.
func (k keyRecord) String() string {
	return fmt.Sprintf("key{access_key=%s secret_key=<redacted>}", k.AccessKey)
}

// Format keeps the secret out of every fmt verb.
func (k keyRecord) Format(f fmt.State, verb rune) { formatRedacted(f, verb, k) }

func (k *storedKeys) nonPrimaryAccessKeys() []string {
	out := make([]string, 0, len(k.NonPrimary))
	for _, r := range k.NonPrimary {
		out = append(out, r.AccessKey)
	}
	return out
}

// tracks reports whether Vault knows the access key, as primary or not.
func (k *storedKeys) tracks(accessKey string) bool {
	if k == nil {
		return false
	}
	if k.AccessKey == accessKey {
		return true
	}
	return slices.ContainsFunc(k.NonPrimary, func(r keyRecord) bool { return r.AccessKey == accessKey })
}

// retired reports whether the access key is one of the site's retired sets.
func (k *storedKeys) retired(accessKey string) bool {
	return slices.ContainsFunc(k.Retired, func(r retiredKey) bool { return r.AccessKey == accessKey })
}

// demotedAt is when a non-primary set stopped being primary. A set stored
// before that was recorded counts as demoted when the current primary was
// stored: the latest it can have been.
func (k *storedKeys) demotedAt(r keyRecord) time.Time {
	if r.DemotedAt.IsZero() {
		return k.Created
	}
	return r.DemotedAt
}

// newestDemotion is the non-primary set demoted last, if any.
func (k *storedKeys) newestDemotion() (keyRecord, time.Time, bool) {
	var newest keyRecord
	var at time.Time
	for _, r := range k.NonPrimary {
		if t := k.demotedAt(r); t.After(at) || at.IsZero() {
			newest, at = r, t
		}
	}
	return newest, at, len(k.NonPrimary) > 0
}

// dropNonPrimary removes the non-primary sets for which gone is true and
// remembers their access keys as retired. It reports whether any went.
func (k *storedKeys) dropNonPrimary(gone func(keyRecord) bool, now time.Time) bool {
	kept := k.NonPrimary[:0:0]
	for _, r := range k.NonPrimary {
		if !gone(r) {
			kept = append(kept, r)
			continue
		}
		k.Retired = append(k.Retired, retiredKey{AccessKey: r.AccessKey, RetiredAt: now})
	}
	if len(kept) == len(k.NonPrimary) {
		return false
	}
	k.NonPrimary = kept
	if n := len(k.Retired); n > maxRetiredKeys {
		k.Retired = slices.Clone(k.Retired[n-maxRetiredKeys:])
	}
	return true
}

// promote makes ks the primary set; the previous primary, if different, is
// kept as non-primary, so no stored key is ever lost.
func (k *storedKeys) promote(ks sigsci.KeySet, now time.Time) {
	if k.AccessKey == ks.AccessKey {
		k.SecretKey = ks.SecretKey
		return
	}
	k.NonPrimary = slices.DeleteFunc(k.NonPrimary, func(r keyRecord) bool { return r.AccessKey == ks.AccessKey })
	if k.AccessKey != "" {
		k.NonPrimary = append(k.NonPrimary, keyRecord{AccessKey: k.AccessKey, SecretKey: k.SecretKey, Stored: k.Created, DemotedAt: now})
	}
	k.AccessKey, k.SecretKey, k.Created = ks.AccessKey, ks.SecretKey, now
}

func credsKey(role, site string) string {
	return credsPrefix + role + "/" + site
}

func (b *backend) loadKeys(ctx context.Context, s logical.Storage, role, site string) (*storedKeys, error) {
	return getJSON[storedKeys](ctx, s, credsKey(role, site), keysWhat(site))
}

// requireKeys loads a site's stored keys and answers 404 if there are none.
func (b *backend) requireKeys(ctx context.Context, req *logical.Request, roleName, site string) (*storedKeys, error) {
	return b.loadKeysOr404(ctx, req.Storage, roleName, site, fmt.Sprintf(
		"role %q holds no keys for site %q; copy them first with: vault write -f %s",
		roleName, site, mountPath(req, "creds/"+roleName+"/sites/"+site)))
}

// loadKeysOr404 loads a site's stored keys and answers 404 with the message
// missing if there are none.
func (b *backend) loadKeysOr404(ctx context.Context, s logical.Storage, role, site, missing string) (*storedKeys, error) {
	k, err := b.loadKeys(ctx, s, role, site)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, logical.CodedError(http.StatusNotFound, missing)
	}
	return k, nil
}

func (b *backend) putKeys(ctx context.Context, s logical.Storage, k *storedKeys) error {
	return putJSON(ctx, s, credsKey(k.Role, k.Site), keysWhat(k.Site), k)
}

// keysWhat names a site's stored keys in a storage error.
func keysWhat(site string) string {
	return fmt.Sprintf("the stored keys of site %q", site)
}

// storedSites lists the sites a role holds keys for, sorted.
func (b *backend) storedSites(ctx context.Context, s logical.Storage, role string) ([]string, error) {
	sites, err := s.List(ctx, credsPrefix+role+"/")
	if err != nil {
		return nil, fmt.Errorf("listing stored sites of role %q: %w", role, err)
	}
	sort.Strings(sites)
	return sites, nil
}

// describeSites describes the stored keys of each of the role's sites, by
// site name, and lists the names described, in the order given. A site
// whose keys were deleted since the list is left out.
func (b *backend) describeSites(ctx context.Context, s logical.Storage, role string, sites []string, describe func(*storedKeys) (map[string]interface{}, error)) (map[string]interface{}, []string, error) {
	all := make(map[string]interface{}, len(sites))
	names := make([]string, 0, len(sites))
	for _, site := range sites {
		k, err := b.loadKeys(ctx, s, role, site)
		if err != nil {
			return nil, nil, err
		}
		if k == nil {
			continue // deleted since the list
		}
		data, err := describe(k)
		if err != nil {
			return nil, nil, err
		}
		all[site] = data
		names = append(names, site)
	}
	return all, names, nil
}

// otherHolders returns the stored keys of the site held by other roles of
// the same corp, by role name.
func (b *backend) otherHolders(ctx context.Context, s logical.Storage, roleName, corp, site string) (map[string]*storedKeys, error) {
	roles, err := b.listRoles(ctx, s)
	if err != nil {
		return nil, err
	}
	out := map[string]*storedKeys{}
	for _, other := range roles {
		if other == roleName {
			continue
		}
		k, err := b.loadKeys(ctx, s, other, site)
		if err != nil {
			return nil, err
		}
		if k != nil && k.Corp == corp {
			out[other] = k
		}
	}
	return out, nil
}

// demoted describes the non-primary sets: access key and when each stopped
// being primary.
func (k *storedKeys) demoted() []map[string]interface{} {
	out := make([]map[string]interface{}, 0, len(k.NonPrimary))
	for _, rec := range k.NonPrimary {
		out = append(out, map[string]interface{}{
			"access_key": rec.AccessKey,
			"demoted_at": k.demotedAt(rec).UTC().Format(time.RFC3339),
		})
	}
	return out
}

// The names of the key set's fields in every answer: the API's own, which
// agent.ctmpl reads.
const (
	fieldAccessKey = "accessKey"
	fieldSecretKey = "secretKey"
)

// keysData is what a read of one stored site returns: the primary set,
// secret included, and its metadata.
func keysData(k *storedKeys) map[string]interface{} {
	data := keysMetadata(k)
	data[fieldSecretKey] = k.SecretKey
	return data
}

// keysMetadata is what every other answer shows of a stored site: its
// metadata and primary access key, never a secret.
func keysMetadata(k *storedKeys) map[string]interface{} {
	data := map[string]interface{}{
		fieldAccessKey:            k.AccessKey,
		"site":                    k.Site,
		"corp":                    k.Corp,
		"created":                 k.Created.UTC().Format(time.RFC3339),
		"non_primary_access_keys": k.nonPrimaryAccessKeys(),
	}
	// Left out, not "", until the first rotation: consul-template hides
	// every data value in its error messages, and an empty one turns a
	// template error into "[redacted]" between every character.
	if !k.LastVaultRotation.IsZero() {
		data["last_vault_rotation"] = k.LastVaultRotation.UTC().Format(time.RFC3339)
	}
	return data
}
