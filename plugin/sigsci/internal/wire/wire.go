// Package wire holds every JSON shape of the Signal Sciences API that this
// module reads or writes. The client (package sigsci) decodes these shapes and
// the simulator (package sigscisim) encodes them, so an assumption about the
// upstream API is corrected here, in one place. Nothing outside plugin/sigsci
// may import this package; it must not contain behaviour, only shapes and the
// words that go with them: header names, the rate-limit wording and the
// API's time format.
//
// Shapes confirmed by public documentation say so; every other shape is marked
// "Assumption:" and mirrors the "Assumed" section of the API design note.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Header names for authentication on every API call (documented).
const (
	HeaderUser  = "x-api-user"
	HeaderToken = "x-api-token"
)

// Error is the body of every 4xx/5xx answer (documented): {"message": "..."}.
type Error struct {
	Message string `json:"message"`
}

// RateLimitMessage is what the message of a rate-limited call contains when
// the API signals rate limiting with a 400 rather than a 429. Public clients
// of the v0 API (Fastly's own among them) retry on exactly this text; none
// reads a Retry-After, so its presence is not assumed either.
const RateLimitMessage = "Rate limit exceeded"

// List is the envelope of the list answers: the items in "data" and, where
// the API sends it, "totalCount".
type List[T any] struct {
	Data       []T  `json:"data"`
	TotalCount *int `json:"totalCount,omitempty"`
}

// SiteList is the answer of GET /corps/{corp}/sites (documented: "data").
//
// Assumption: the sites list honours ?page=P&limit=L (limit at most 100) and
// carries "totalCount" like the other list endpoints do; a client must also
// cope with its absence (short or empty page ends the list) and with an API
// that ignores page (the same page again adds nothing new and ends the list;
// names are de-duplicated).
type SiteList = List[Site]

// Site is one item of SiteList (documented: name, displayName, created).
type Site struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	Created     Time   `json:"created"`
}

// PrimaryKeys is the answer of GET /corps/{corp}/sites/{site}/keys
// (documented): the site's primary key set.
type PrimaryKeys struct {
	Name      string `json:"name"`
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
}

// KeySetList is the answer of GET /corps/{corp}/sites/{site}/agentKeys.
//
// Assumption: {"data":[KeySet...]} (documented only as "each item has
// accessKey"); "totalCount" may be present and is not needed, and the list is
// short enough that it is not paginated.
type KeySetList = List[KeySet]

// KeySet is one agent key set.
//
// Assumption: items carry accessKey and secretKey. Nothing public shows an
// item, so the primary flag and the creation time are read under each name
// seen in the v0 and v1 APIs: "primary", "isPrimary" or "is_primary", and
// "created", "createdAt" or "created_at". The flag is never trusted on its
// own: the primary set is the one GET .../keys names (PrimaryKeys).
//
// Assumption: POST /corps/{corp}/sites/{site}/agentKeys (no body) answers
// 200 or 201 with the new set in this shape, wrapped as {"data": set}, or
// without it ({} or 204 with no body), and the new set is primary. Whatever
// the answer, the client confirms the new set by listing.
//
// Assumption: DELETE /corps/{corp}/sites/{site}/agentKeys/{accessKey} retires
// one set and answers 204 (200 is accepted too); deleting the primary set is
// refused with 400, an unknown set answers 404. A 404 is not taken as proof
// that a set is gone (a wrong route answers 404 too): the client lists again.
type KeySet struct {
	AccessKey      string `json:"accessKey,omitempty"`
	SecretKey      string `json:"secretKey,omitempty"`
	Primary        *bool  `json:"primary,omitempty"`
	IsPrimary      *bool  `json:"isPrimary,omitempty"`
	IsPrimarySnake *bool  `json:"is_primary,omitempty"`
	Created        Time   `json:"created,omitzero"`
	CreatedAt      Time   `json:"createdAt,omitzero"`
	CreatedAtSnake Time   `json:"created_at,omitzero"`
}

// CreatedKeySet is the answer of POST .../agentKeys: the set itself or the
// set wrapped in "data" (Assumption, see KeySet); both may be absent.
type CreatedKeySet struct {
	KeySet
	Data *KeySet `json:"data,omitempty"`
}

// Time is an RFC 3339 timestamp that also accepts null and "" (read as the
// zero time), so a missing or empty "created" does not fail a whole answer.
// A zero Time is left out of a KeySet (omitzero) and written as null elsewhere.
type Time struct {
	time.Time
}

// MarshalJSON writes RFC 3339 with fractional seconds, or null for the zero time.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// UnmarshalJSON reads RFC 3339 (with or without fractional seconds), null or "".
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp is not a string: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("timestamp %q is not RFC 3339: %w", s, err)
	}
	t.Time = parsed
	return nil
}
