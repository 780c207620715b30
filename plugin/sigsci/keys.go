package sigsci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/internal/wire"
)

// PrimaryKeys returns the site's primary key set (Primary is true; Created is
// not part of this answer and stays zero).
func (c *Client) PrimaryKeys(ctx context.Context, corp, site string) (KeySet, error) {
	path, err := sitePath(corp, site)
	if err != nil {
		return KeySet{}, err
	}
	path += "/keys"
	_, body, err := c.do(ctx, http.MethodGet, path, nil)
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

// ListKeySets returns the site's live key sets, in the API's order.
func (c *Client) ListKeySets(ctx context.Context, corp, site string) ([]KeySet, error) {
	path, err := sitePath(corp, site)
	if err != nil {
		return nil, err
	}
	path += "/agentKeys"
	_, body, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	var list wire.KeySetList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("sigsci: GET %s: unexpected answer: %w", path, err)
	}
	sets := make([]KeySet, 0, len(list.Data))
	for _, k := range list.Data {
		sets = append(sets, keySetFromWire(k, false))
	}
	return sets, nil
}

// CreateKeySet creates a new key set for the site; the API makes it primary.
// The request is not repeated once it may have reached the server; such
// failures wrap ErrOutcomeUnknown (see the package documentation). If the
// answer does not carry the new set, the sets are listed and the newest is
// returned.
func (c *Client) CreateKeySet(ctx context.Context, corp, site string) (KeySet, error) {
	path, err := sitePath(corp, site)
	if err != nil {
		return KeySet{}, err
	}
	path += "/agentKeys"
	_, body, err := c.do(ctx, http.MethodPost, path, nil)
	if err != nil {
		return KeySet{}, err
	}
	var created wire.KeySet
	if json.Unmarshal(body, &created) == nil && created.AccessKey != "" && created.SecretKey != "" {
		return keySetFromWire(created, true), nil
	}
	return c.newestKeySet(ctx, corp, site)
}

// newestKeySet finds the set a POST just created when its answer was empty.
func (c *Client) newestKeySet(ctx context.Context, corp, site string) (KeySet, error) {
	sets, err := c.ListKeySets(ctx, corp, site)
	if err != nil {
		return KeySet{}, fmt.Errorf("sigsci: key set created but its answer was empty, and listing failed: %w", err)
	}
	newest, ok := pickNewest(sets)
	if !ok {
		return KeySet{}, errors.New("sigsci: key set created but its answer was empty and the site lists no key sets")
	}
	return newest, nil
}

// pickNewest returns the set with the latest Created; on a tie a primary set
// wins, then the later one in the list.
func pickNewest(sets []KeySet) (KeySet, bool) {
	if len(sets) == 0 {
		return KeySet{}, false
	}
	best := sets[0]
	for _, s := range sets[1:] {
		switch {
		case s.Created.After(best.Created):
			best = s
		case s.Created.Equal(best.Created) && (s.Primary || !best.Primary):
			best = s
		}
	}
	return best, true
}

// DeleteKeySet retires one key set. The API refuses to delete the primary set
// (400). A 404 (IsNotFound) means the set, site or corp is not there; when a
// DELETE was retried after a lost answer, the set may have been deleted by the
// first attempt, so callers treat a 404 for a set they listed as "already gone".
func (c *Client) DeleteKeySet(ctx context.Context, corp, site, accessKey string) error {
	path, err := keySetPath(corp, site, accessKey)
	if err != nil {
		return err
	}
	_, _, err = c.do(ctx, http.MethodDelete, path, nil)
	return err
}

func keySetFromWire(k wire.KeySet, primaryByDefault bool) KeySet {
	primary := primaryByDefault
	if k.Primary != nil {
		primary = *k.Primary
	}
	return KeySet{AccessKey: k.AccessKey, SecretKey: k.SecretKey, Primary: primary, Created: k.Created.Time}
}
