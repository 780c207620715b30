package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The write-ahead log: one framework WAL entry per remote change in flight.
// This file holds the entry's format and its storage; wal_index.go keeps
// the entries in memory, and recovery.go completes interrupted ones.

// WAL entry kinds.
const (
	walKindRotate = "sigsci-rotate"
	walKindRetire = "sigsci-retire"
)

// maxLastErrorLen bounds the error text a WAL entry keeps.
const maxLastErrorLen = 500

// walOp is the data of a WAL entry: enough to find the site and to tell,
// from the API's list of key sets, what the interrupted operation did. It
// holds access keys and error texts only, never a secret (WAL entries are
// not seal-wrapped, and no error of this engine carries a secret).
type walOp struct {
	OpID string `json:"op_id"`
	Role string `json:"role"`
	Corp string `json:"corp"`
	Site string `json:"site"`
	// Started is when the operation wrote the entry, by the backend's clock.
	Started time.Time `json:"started,omitzero"`

	// rotate: the sets listed before the create.
	Before []string `json:"before,omitempty"`

	// retire: the primary to keep and the sets to delete.
	Primary string   `json:"primary,omitempty"`
	Retire  []string `json:"retire,omitempty"`

	// LastError is why recovery could not complete the operation yet.
	LastError string `json:"last_error,omitempty"`
	// GivenUpAt is when recovery gave the operation up (pending_max_age).
	GivenUpAt time.Time `json:"given_up_at,omitzero"`
}

// walRecord is one WAL entry with its storage id.
type walRecord struct {
	id      string
	kind    string
	op      walOp
	created time.Time // the framework's timestamp, by the node's real clock
}

// started is when the operation began: its own record of it, or, for an
// entry written before that was recorded, the framework's timestamp.
func (r walRecord) started() time.Time {
	if !r.op.Started.IsZero() {
		return r.op.Started
	}
	return r.created
}

// opAge is how long ago the operation began. The start it recorded is by
// the backend's clock; the framework's timestamp is by the node's clock.
func (b *backend) opAge(rec walRecord) time.Duration {
	if !rec.op.Started.IsZero() {
		return b.now().Sub(rec.op.Started)
	}
	return time.Since(rec.created)
}

// putWAL gives op a unique id and its start time, writes it to the WAL and
// indexes it as this instance's own.
func (b *backend) putWAL(ctx context.Context, s logical.Storage, kind string, op *walOp) (walRecord, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return walRecord{}, fmt.Errorf("generating an operation id: %w", err)
	}
	op.OpID = hex.EncodeToString(raw[:])
	op.Started = b.now().UTC()
	created := time.Now().UTC()
	id, err := framework.PutWAL(ctx, s, kind, op)
	if err != nil {
		return walRecord{}, fmt.Errorf("writing WAL entry for site %q: %w", op.Site, err)
	}
	rec := walRecord{id: id, kind: kind, op: *op, created: created}
	b.wal.add(rec, true)
	return rec, nil
}

// rewriteWAL stores a changed walOp in its existing entry, keeping the
// entry's id and timestamp, so that Vault's rollback sees the same entry.
func (b *backend) rewriteWAL(ctx context.Context, s logical.Storage, rec walRecord) error {
	value, err := json.Marshal(&framework.WALEntry{Kind: rec.kind, Data: rec.op, CreatedAt: rec.created.Unix()})
	if err != nil {
		return fmt.Errorf("encoding WAL entry %s: %w", rec.id, err)
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: framework.WALPrefix + rec.id, Value: value}); err != nil {
		return fmt.Errorf("updating WAL entry %s: %w", rec.id, err)
	}
	b.wal.add(rec, false)
	return nil
}

// noteWALError keeps why an operation could not be completed in its entry,
// for the rotation status to show. A failure to do so is only logged.
func (b *backend) noteWALError(ctx context.Context, s logical.Storage, rec walRecord, cause error) {
	msg := cause.Error()
	if len(msg) > maxLastErrorLen {
		msg = msg[:maxLastErrorLen] + "…"
	}
	if msg == rec.op.LastError {
		return
	}
	rec.op.LastError = msg
	if err := b.rewriteWAL(ctx, s, rec); err != nil {
		b.Logger().Warn("could not record the last error of an unfinished operation", "site", rec.op.Site, "error", err)
	}
}

func (b *backend) deleteWAL(ctx context.Context, s logical.Storage, rec walRecord) error {
	if err := framework.DeleteWAL(ctx, s, rec.id); err != nil {
		return fmt.Errorf("deleting WAL entry %s: %w", rec.id, err)
	}
	b.wal.remove(rec.id)
	return nil
}

// decodeWALOp turns WAL data (a generic map once read back) into a walOp.
func decodeWALOp(data interface{}) (walOp, error) {
	var op walOp
	raw, err := json.Marshal(data)
	if err != nil {
		return op, fmt.Errorf("encoding WAL data: %w", err)
	}
	if err := json.Unmarshal(raw, &op); err != nil {
		return op, fmt.Errorf("decoding WAL data: %w", err)
	}
	if op.OpID == "" || op.Role == "" || op.Corp == "" || op.Site == "" {
		return op, fmt.Errorf("WAL data lacks op_id, role, corp or site")
	}
	return op, nil
}

// readWAL reads one WAL entry of this engine; ok is false if it is gone,
// of another kind, or unreadable (reported in the log).
func (b *backend) readWAL(ctx context.Context, s logical.Storage, id string) (walRecord, bool, error) {
	entry, err := framework.GetWAL(ctx, s, id)
	if err != nil {
		return walRecord{}, false, fmt.Errorf("reading WAL entry %s: %w", id, err)
	}
	if entry == nil || (entry.Kind != walKindRotate && entry.Kind != walKindRetire) {
		return walRecord{}, false, nil
	}
	op, err := decodeWALOp(entry.Data)
	if err != nil {
		b.Logger().Warn("skipping unreadable WAL entry", "id", id, "error", err)
		return walRecord{}, false, nil
	}
	return walRecord{id: id, kind: entry.Kind, op: op, created: time.Unix(entry.CreatedAt, 0).UTC()}, true, nil
}

// listWALOps reads every WAL entry of this engine from storage, in id order.
func (b *backend) listWALOps(ctx context.Context, s logical.Storage) ([]walRecord, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("listing WAL entries: %w", err)
	}
	sort.Strings(ids)
	var out []walRecord
	for _, id := range ids {
		rec, ok, err := b.readWAL(ctx, s, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, rec)
		}
	}
	return out, nil
}

// pendingWALSites lists the sites of a role with an unfinished operation.
func (b *backend) pendingWALSites(ctx context.Context, s logical.Storage, role string) ([]string, error) {
	records, err := b.listWALOps(ctx, s)
	if err != nil {
		return nil, err
	}
	var sites []string
	for _, rec := range records {
		if rec.op.Role == role {
			sites = append(sites, rec.op.Site)
		}
	}
	return sites, nil
}
