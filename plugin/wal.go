package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// WAL entry kinds.
const (
	walKindRotate = "sigsci-rotate"
	walKindRetire = "sigsci-retire"
)

// walOp is the data of a WAL entry: enough to find the site and to tell,
// from the API's list of key sets, what the interrupted operation did. It
// holds access keys only, never a secret (WAL entries are not seal-wrapped).
type walOp struct {
	OpID string `json:"op_id"`
	Role string `json:"role"`
	Corp string `json:"corp"`
	Site string `json:"site"`

	// rotate: the sets listed before the create.
	Before []string `json:"before,omitempty"`

	// retire: the primary to keep and the sets to delete.
	Primary string   `json:"primary,omitempty"`
	Retire  []string `json:"retire,omitempty"`
}

// putWAL gives op a unique id and writes it to the WAL.
func (b *backend) putWAL(ctx context.Context, s logical.Storage, kind string, op *walOp) (string, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generating an operation id: %w", err)
	}
	op.OpID = hex.EncodeToString(raw[:])
	id, err := framework.PutWAL(ctx, s, kind, op)
	if err != nil {
		return "", fmt.Errorf("writing WAL entry for site %q: %w", op.Site, err)
	}
	return id, nil
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

// walRecord is one WAL entry with its storage id.
type walRecord struct {
	id      string
	kind    string
	op      walOp
	created time.Time
}

// listWALOps reads every WAL entry of this engine. Entries that cannot be
// decoded are reported in the log and skipped.
func (b *backend) listWALOps(ctx context.Context, s logical.Storage) ([]walRecord, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("listing WAL entries: %w", err)
	}
	sort.Strings(ids)
	var out []walRecord
	for _, id := range ids {
		entry, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return nil, fmt.Errorf("reading WAL entry %s: %w", id, err)
		}
		if entry == nil || (entry.Kind != walKindRotate && entry.Kind != walKindRetire) {
			continue
		}
		op, err := decodeWALOp(entry.Data)
		if err != nil {
			b.Logger().Warn("skipping unreadable WAL entry", "id", id, "error", err)
			continue
		}
		out = append(out, walRecord{id: id, kind: entry.Kind, op: op, created: time.Unix(entry.CreatedAt, 0).UTC()})
	}
	return out, nil
}

// findWAL returns the storage id of the WAL entry of an operation, or ""
// when it no longer exists (it was completed meanwhile).
func (b *backend) findWAL(ctx context.Context, s logical.Storage, opID string) (string, error) {
	records, err := b.listWALOps(ctx, s)
	if err != nil {
		return "", err
	}
	for _, rec := range records {
		if rec.op.OpID == opID {
			return rec.id, nil
		}
	}
	return "", nil
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

// errWritesNotSafe keeps a WAL entry on a node where writes are not safe. It
// wraps logical.ErrReadOnly, which Vault's rollback manager does not log as
// a failure: the active node of the primary cluster does the work.
var errWritesNotSafe = fmt.Errorf("WAL rollback left to the active node of the primary cluster: %w", logical.ErrReadOnly)

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
	id, err := b.findWAL(ctx, req.Storage, op.OpID)
	if err != nil {
		return err
	}
	if id == "" {
		return nil // completed by a request or by start-up recovery meanwhile
	}
	return b.completeWAL(ctx, req.Storage, walRecord{id: id, kind: kind, op: op})
}

// recoverAll completes, at start-up, every operation a crash interrupted.
// Failures are logged; the periodic rollback retries them.
func (b *backend) recoverAll(ctx context.Context, s logical.Storage) {
	records, err := b.listWALOps(ctx, s)
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
	id, err := b.findWAL(ctx, s, rec.op.OpID)
	if err != nil || id == "" {
		return
	}
	if err := b.completeWAL(ctx, s, rec); err != nil {
		b.Logger().Warn("could not complete an interrupted operation; the periodic rollback retries it",
			"kind", rec.kind, "site", rec.op.Site, "corp", rec.op.Corp, "error", err)
	}
}

// recoverPendingFor completes the unfinished operations of one site before
// a new operation on it starts. The caller holds the site lock.
func (b *backend) recoverPendingFor(ctx context.Context, s logical.Storage, corp, site string) error {
	records, err := b.listWALOps(ctx, s)
	if err != nil {
		return err
	}
	for _, rec := range records {
		if rec.op.Corp != corp || rec.op.Site != site {
			continue
		}
		if err := b.completeWAL(ctx, s, rec); err != nil {
			return logical.CodedError(503, fmt.Sprintf(
				"an earlier operation on site %q is unfinished and could not be completed yet: %v; retry later", site, err))
		}
	}
	return nil
}

// completeWAL finishes one interrupted operation and deletes its WAL entry.
// The caller holds the site lock. An entry that can never be completed (its
// role is gone, or the site no longer exists at the API) is dropped with a
// warning; an error means "try again later".
func (b *backend) completeWAL(ctx context.Context, s logical.Storage, rec walRecord) error {
	op := rec.op
	r, err := b.loadRole(ctx, s, op.Role)
	if err != nil {
		return err
	}
	if r == nil || r.Corp != op.Corp {
		b.Logger().Warn("dropping an unfinished operation whose role no longer exists for its corp; check the site's key sets at the API",
			"kind", rec.kind, "role", op.Role, "corp", op.Corp, "site", op.Site)
		return b.deleteWAL(ctx, s, rec.id)
	}
	client, err := b.client(op.Role, r)
	if err != nil {
		return err
	}

	switch rec.kind {
	case walKindRotate:
		res, err := b.completeRotation(ctx, s, client, op, nil)
		if sigsci.IsNotFound(err) {
			b.Logger().Warn("dropping an unfinished rotation of a site the API no longer has", "corp", op.Corp, "site", op.Site)
			return b.deleteWAL(ctx, s, rec.id)
		}
		if err != nil {
			return err
		}
		b.Logger().Info("completed an interrupted rotation", "corp", op.Corp, "site", op.Site, "rotated", res.rotated,
			"untracked", strings.Join(res.untracked, ","))
	case walKindRetire:
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
	}
	return b.deleteWAL(ctx, s, rec.id)
}

func (b *backend) deleteWAL(ctx context.Context, s logical.Storage, id string) error {
	if err := framework.DeleteWAL(ctx, s, id); err != nil {
		return fmt.Errorf("deleting WAL entry %s: %w", id, err)
	}
	return nil
}
