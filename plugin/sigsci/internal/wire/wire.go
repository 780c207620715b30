// Package wire holds every JSON shape of the Signal Sciences API that this
// module reads or writes. The client (package sigsci) decodes these shapes and
// the simulator (package sigscisim) encodes them, so an assumption about the
// upstream API is corrected here, in one place. Nothing outside plugin/sigsci
// may import this package; it must not contain behaviour, only shapes.
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

// SiteList is the answer of GET /corps/{corp}/sites (documented: "data").
//
// Assumption: the sites list honours ?page=P&limit=L (limit at most 100) and
// carries "totalCount" like the other list endpoints do; a client must also
// cope with its absence (short or empty page ends the list).
type SiteList struct {
	Data       []Site `json:"data"`
	TotalCount *int   `json:"totalCount,omitempty"`
}

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
type KeySetList struct {
	Data       []KeySet `json:"data"`
	TotalCount *int     `json:"totalCount,omitempty"`
}

// KeySet is one agent key set.
//
// Assumption: items carry accessKey, secretKey, primary and created (RFC 3339).
//
// Assumption: POST /corps/{corp}/sites/{site}/agentKeys (no body) answers
// 200 or 201 with the new set in this same shape, and the new set is primary.
// A missing "primary" is read as true for that answer; a body without
// accessKey makes the client list the sets and take the newest.
//
// Assumption: DELETE /corps/{corp}/sites/{site}/agentKeys/{accessKey} retires
// one set and answers 204 (200 is accepted too); deleting the primary set is
// refused with 400, an unknown set answers 404.
type KeySet struct {
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
	Primary   *bool  `json:"primary,omitempty"`
	Created   Time   `json:"created"`
}

// Time is an RFC 3339 timestamp that also accepts null and "" (read as the
// zero time), so a missing or empty "created" does not fail a whole answer.
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
