package plugin

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// walIndex keeps this backend instance's view of the WAL in memory, so
// that recovery finds an operation's entry without reading every other
// one: a rollback pass over N entries reads storage O(N) times, not O(N²).
//
// Storage stays the truth. A sync lists the WAL's ids (a List, no reads)
// and reads only the entries the index does not know yet, which another
// instance of the plugin wrote or which were written by hand; an entry is
// read again before it is acted upon. Only the active node writes entries.
type walIndex struct {
	mu   sync.Mutex
	byOp map[string]walRecord // operation id -> entry
	byID map[string]string    // entry id -> operation id ("": not ours)
	// own holds the operations this instance wrote: none of them runs
	// while its site's lock is held, unlike one another instance wrote.
	own map[string]bool
}

func newWALIndex() *walIndex {
	return &walIndex{byOp: map[string]walRecord{}, byID: map[string]string{}, own: map[string]bool{}}
}

// add indexes an entry; own marks it as written by this instance.
func (x *walIndex) add(rec walRecord, own bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.byOp[rec.op.OpID] = rec
	x.byID[rec.id] = rec.op.OpID
	if own {
		x.own[rec.op.OpID] = true
	}
}

// remove forgets a deleted entry.
func (x *walIndex) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.forgetLocked(id)
}

func (x *walIndex) forgetLocked(id string) {
	if opID := x.byID[id]; opID != "" {
		delete(x.byOp, opID)
		delete(x.own, opID)
	}
	delete(x.byID, id)
}

// isOwn reports whether this instance wrote the operation's entry.
func (x *walIndex) isOwn(opID string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.own[opID]
}

// syncWALIndexLocked brings the index in line with storage: it lists the
// WAL, reads the entries it does not know and forgets those gone. The
// caller holds the index's mu.
func (b *backend) syncWALIndexLocked(ctx context.Context, s logical.Storage) error {
	x := b.wal
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(ids))
	for _, id := range ids {
		listed[id] = true
		if _, known := x.byID[id]; known {
			continue
		}
		rec, ok, err := b.readWAL(ctx, s, id)
		if err != nil {
			return err
		}
		x.byID[id] = ""
		if ok {
			x.byID[id] = rec.op.OpID
			x.byOp[rec.op.OpID] = rec
		}
	}
	for id := range x.byID {
		if !listed[id] {
			x.forgetLocked(id)
		}
	}
	return nil
}

// indexedWAL returns the entries storage holds now, optionally only those
// whose operation matches, in id order.
func (b *backend) indexedWAL(ctx context.Context, s logical.Storage, match func(walOp) bool) ([]walRecord, error) {
	x := b.wal
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := b.syncWALIndexLocked(ctx, s); err != nil {
		return nil, err
	}
	var out []walRecord
	for _, rec := range x.byOp {
		if match == nil || match(rec.op) {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b walRecord) int { return strings.Compare(a.id, b.id) })
	return out, nil
}

// pendingWAL returns the entry of an operation as storage holds it now;
// ok is false when it no longer exists (completed meanwhile).
func (b *backend) pendingWAL(ctx context.Context, s logical.Storage, opID string) (walRecord, bool, error) {
	x := b.wal
	x.mu.Lock()
	rec, known := x.byOp[opID]
	if !known {
		if err := b.syncWALIndexLocked(ctx, s); err != nil {
			x.mu.Unlock()
			return walRecord{}, false, err
		}
		rec, known = x.byOp[opID]
	}
	x.mu.Unlock()
	if !known {
		return walRecord{}, false, nil
	}
	fresh, ok, err := b.readWAL(ctx, s, rec.id)
	if err != nil {
		return walRecord{}, false, err
	}
	if !ok {
		x.remove(rec.id)
		return walRecord{}, false, nil
	}
	return fresh, true, nil
}
