package sigsci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/internal/wire"
)

// siteCall runs method on one endpoint of a site (suffix: "/keys",
// "/agentKeys") and returns the endpoint's path and the answer's body.
func (c *Client) siteCall(ctx context.Context, method, corp, site, suffix string) (string, []byte, error) {
	path, err := sitePath(corp, site)
	if err != nil {
		return "", nil, err
	}
	path += suffix
	_, body, err := c.do(ctx, method, path, nil)
	return path, body, err
}

// PrimaryKeys returns the site's primary key set (Primary is true; Created is
// not part of this answer and stays zero).
func (c *Client) PrimaryKeys(ctx context.Context, corp, site string) (KeySet, error) {
	path, body, err := c.siteCall(ctx, http.MethodGet, corp, site, "/keys")
	if err != nil {
		return KeySet{}, err
	}
	var keys wire.PrimaryKeys
	if err := json.Unmarshal(body, &keys); err != nil {
		return KeySet{}, fmt.Errorf("sigsci: GET %s: unexpected answer: %w", path, err)
	}
	if keys.AccessKey == "" || keys.SecretKey == "" {
		return KeySet{}, fmt.Errorf("sigsci: GET %s: answer has no accessKey or secretKey", path)
	}
	return KeySet{AccessKey: keys.AccessKey, SecretKey: keys.SecretKey, Primary: true}, nil
}

// ListKeySets returns the site's live key sets, in the API's order. Which
// set is primary is decided by GET .../keys, whose shape is documented: the
// list's own primary flag (under any of the names wire.KeySet reads) is only
// cross-checked, and a disagreement is logged, never trusted. The primary
// set carries the secret GET .../keys gave.
func (c *Client) ListKeySets(ctx context.Context, corp, site string) ([]KeySet, error) {
	path, err := sitePath(corp, site)
	if err != nil {
		return nil, err
	}
	path += "/agentKeys"
	listed, err := c.listKeySets(ctx, path)
	if err != nil {
		return nil, err
	}
	primary, err := c.PrimaryKeys(ctx, corp, site)
	if err != nil {
		return nil, err
	}
	if !lists(listed, primary.AccessKey) {
		// A set created between the two calls is primary but not listed
		// yet: list once more.
		if listed, err = c.listKeySets(ctx, path); err != nil {
			return nil, err
		}
		if !lists(listed, primary.AccessKey) {
			return nil, fmt.Errorf("sigsci: GET %s does not list the primary key set %s that GET .../keys names", path, primary.AccessKey)
		}
	}
	return c.markPrimary(corp, site, listed, primary), nil
}

// listedKeySet is one item of the agentKeys list, with the list's own
// primary flag (nil when the item has none).
type listedKeySet struct {
	KeySet
	flag *bool
}

func (c *Client) listKeySets(ctx context.Context, path string) ([]listedKeySet, error) {
	_, body, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	var list wire.KeySetList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("sigsci: GET %s: unexpected answer: %w", path, err)
	}
	out := make([]listedKeySet, 0, len(list.Data))
	for _, k := range list.Data {
		out = append(out, listedKeySet{
			KeySet: KeySet{AccessKey: k.AccessKey, SecretKey: k.SecretKey, Created: createdOf(k)},
			flag:   primaryFlag(k),
		})
	}
	return out, nil
}

func lists(sets []listedKeySet, accessKey string) bool {
	return slices.ContainsFunc(sets, func(k listedKeySet) bool { return k.AccessKey == accessKey })
}

// markPrimary marks the set GET .../keys named as the primary one and logs
// a list whose own flag says otherwise.
func (c *Client) markPrimary(corp, site string, listed []listedKeySet, primary KeySet) []KeySet {
	sets := make([]KeySet, 0, len(listed))
	flagged := []string{}
	disagrees := false
	for _, l := range listed {
		k := l.KeySet
		k.Primary = k.AccessKey == primary.AccessKey
		if k.Primary {
			k.SecretKey = primary.SecretKey
		}
		if l.flag != nil {
			disagrees = disagrees || *l.flag != k.Primary
			if *l.flag {
				flagged = append(flagged, k.AccessKey)
			}
		}
		sets = append(sets, k)
	}
	if disagrees {
		c.logger.Warn("the key-set list's primary flag disagrees with GET .../keys, which decides",
			"corp", corp, "site", site, "primary", primary.AccessKey, "flagged_primary", flagged)
	}
	return sets
}

// CreateKeySet creates a new key set for the site; the API makes it primary.
// The request is not repeated once it may have reached the server; such
// failures wrap ErrOutcomeUnknown (see the package documentation). The
// answer may carry the set, carry it wrapped in "data", or not carry it ({}
// or no body); then the set GET .../keys names as primary is returned. The
// answer is the API's word only: callers that must be sure list the sets.
func (c *Client) CreateKeySet(ctx context.Context, corp, site string) (KeySet, error) {
	_, body, err := c.siteCall(ctx, http.MethodPost, corp, site, "/agentKeys")
	if err != nil {
		return KeySet{}, err
	}
	if created, ok := decodeCreated(body); ok {
		return created, nil
	}
	return c.newPrimary(ctx, corp, site)
}

// decodeCreated reads the set from a create answer, if it carries one.
func decodeCreated(body []byte) (KeySet, bool) {
	var answer wire.CreatedKeySet
	if json.Unmarshal(body, &answer) != nil {
		return KeySet{}, false
	}
	k := answer.KeySet
	if answer.Data != nil {
		k = *answer.Data
	}
	if k.AccessKey == "" || k.SecretKey == "" {
		return KeySet{}, false
	}
	primary := true
	if f := primaryFlag(k); f != nil {
		primary = *f
	}
	return KeySet{AccessKey: k.AccessKey, SecretKey: k.SecretKey, Primary: primary, Created: createdOf(k)}, true
}

// newPrimary finds the set a POST just created when its answer did not
// carry it: the new set is the primary one.
func (c *Client) newPrimary(ctx context.Context, corp, site string) (KeySet, error) {
	sets, err := c.ListKeySets(ctx, corp, site)
	if err != nil {
		return KeySet{}, fmt.Errorf("sigsci: key set created but the answer does not carry it, and listing failed: %w", err)
	}
	for _, k := range sets {
		if k.Primary {
			return k, nil
		}
	}
	return KeySet{}, errors.New("sigsci: key set created but the answer does not carry it and the site lists no primary set")
}

// DeleteKeySet retires one key set. The API refuses to delete the primary set
// (400). A 404 (IsNotFound) means the set, site or corp is not there, or that
// the route is not the API's: callers list the sets again to learn whether
// the set is gone.
func (c *Client) DeleteKeySet(ctx context.Context, corp, site, accessKey string) error {
	path, err := keySetPath(corp, site, accessKey)
	if err != nil {
		return err
	}
	_, _, err = c.do(ctx, http.MethodDelete, path, nil)
	return err
}

// primaryFlag is an item's own primary flag under whichever name it uses,
// or nil.
func primaryFlag(k wire.KeySet) *bool {
	for _, f := range []*bool{k.Primary, k.IsPrimary, k.IsPrimarySnake} {
		if f != nil {
			return f
		}
	}
	return nil
}

// createdOf is an item's creation time under whichever name it uses, or zero.
func createdOf(k wire.KeySet) time.Time {
	for _, t := range []wire.Time{k.Created, k.CreatedAt, k.CreatedAtSnake} {
		if !t.IsZero() {
			return t.Time
		}
	}
	return time.Time{}
}
