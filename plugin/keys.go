package plugin

import (
	"context"
	"fmt"
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
}

// keyRecord is a non-primary key set kept until it is retired.
type keyRecord struct {
	AccessKey string    `json:"access_key"`
	SecretKey string    `json:"secret_key"`
	Stored    time.Time `json:"stored"`
}

// String keeps secrets out of any formatted output.
func (k storedKeys) String() string {
	return fmt.Sprintf("keys{role=%s corp=%s site=%s access_key=%s secret_key=<redacted> non_primary=%d}",
		k.Role, k.Corp, k.Site, k.AccessKey, len(k.NonPrimary))
}

// GoString keeps secrets out of %#v.
func (k storedKeys) GoString() string { return k.String() }

// String keeps the secret out of any formatted output.
func (k keyRecord) String() string {
	return fmt.Sprintf("key{access_key=%s secret_key=<redacted>}", k.AccessKey)
}

// GoString keeps the secret out of %#v.
func (k keyRecord) GoString() string { return k.String() }

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

// promote makes ks the primary set; the previous primary, if different, is
// kept as non-primary, so no stored key is ever lost.
func (k *storedKeys) promote(ks sigsci.KeySet, now time.Time) {
	if k.AccessKey == ks.AccessKey {
		k.SecretKey = ks.SecretKey
		return
	}
	k.NonPrimary = slices.DeleteFunc(k.NonPrimary, func(r keyRecord) bool { return r.AccessKey == ks.AccessKey })
	if k.AccessKey != "" {
		k.NonPrimary = append(k.NonPrimary, keyRecord{AccessKey: k.AccessKey, SecretKey: k.SecretKey, Stored: k.Created})
	}
	k.AccessKey, k.SecretKey, k.Created = ks.AccessKey, ks.SecretKey, now
}

func credsKey(role, site string) string {
	return credsPrefix + role + "/" + site
}

func (b *backend) loadKeys(ctx context.Context, s logical.Storage, role, site string) (*storedKeys, error) {
	entry, err := s.Get(ctx, credsKey(role, site))
	if err != nil {
		return nil, fmt.Errorf("reading stored keys of site %q: %w", site, err)
	}
	if entry == nil {
		return nil, nil
	}
	k := new(storedKeys)
	if err := entry.DecodeJSON(k); err != nil {
		return nil, fmt.Errorf("decoding stored keys of site %q: %w", site, err)
	}
	return k, nil
}

func (b *backend) putKeys(ctx context.Context, s logical.Storage, k *storedKeys) error {
	entry, err := logical.StorageEntryJSON(credsKey(k.Role, k.Site), k)
	if err != nil {
		return fmt.Errorf("encoding stored keys of site %q: %w", k.Site, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing keys of site %q: %w", k.Site, err)
	}
	return nil
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

// keysData is the data returned for one stored site.
func keysData(k *storedKeys) map[string]interface{} {
	data := map[string]interface{}{
		"accessKey":               k.AccessKey,
		"secretKey":               k.SecretKey,
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
