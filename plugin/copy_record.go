package plugin

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The record of a role's last copy of all sites, in storage so that every
// node can show it (a performance standby serves reads itself) and the next
// copy, on whichever node, retries first what failed.

// copyCheckpointEvery is how many sites a job copies between saves of its
// record.
const copyCheckpointEvery = 250

// maxRecordedFailures bounds the failed sites a record names with a reason.
const maxRecordedFailures = 1000

// copySaveTimeout bounds a save of the record, so that Clean never hangs on
// storage.
const copySaveTimeout = 10 * time.Second

// stopReasonClean is why a job Clean stopped did not finish.
const stopReasonClean = "Vault stopped the mount (seal, step-down, plugin reload or unmount) before every site was copied; run the copy again"

func copyRecordKey(role string) string { return copyRecordPrefix + role }

// copyRecord is the stored state of a role's last copy of all sites.
type copyRecord struct {
	State       string            `json:"state"`
	Started     time.Time         `json:"started"`
	Finished    time.Time         `json:"finished,omitzero"`
	Total       int               `json:"total"`
	Copied      int               `json:"copied"`
	Unchanged   int               `json:"unchanged"`
	FailedCount int               `json:"failed_count"`
	Failed      map[string]string `json:"failed,omitempty"`
	Stopped     string            `json:"stopped,omitempty"`
}

// status is the record as the all-sites read and the copy's answer show it.
func (r *copyRecord) status() map[string]interface{} {
	failed := make(map[string]interface{}, len(r.Failed))
	for site, reason := range r.Failed {
		failed[site] = reason
	}
	done := r.Copied + r.Unchanged
	st := map[string]interface{}{
		"state":   r.State,
		"started": r.Started.UTC().Format(time.RFC3339),
		"total":   r.Total,
		"done":    done,
		"failed":  failed,
		"left":    max(r.Total-done-r.FailedCount, 0),
	}
	if !r.Finished.IsZero() {
		st["finished"] = r.Finished.UTC().Format(time.RFC3339)
	}
	if r.Stopped != "" {
		st["stopped"] = r.Stopped
	}
	return st
}

// saveCopy stores the job's record, unless the role is gone: a deleted
// role's record must not come back.
func (b *backend) saveCopy(ctx context.Context, s logical.Storage, job *copyJob) {
	job.saveMu.Lock()
	defer job.saveMu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), copySaveTimeout)
	defer cancel()
	defer b.rlockRole(job.role)()
	if r, err := b.loadRole(ctx, s, job.role); err != nil || r == nil {
		return
	}
	if err := putJSON(ctx, s, copyRecordKey(job.role), copyRecordWhat, job.snapshot()); err != nil {
		b.Logger().Warn("could not store the state of the copy of all sites", "role", job.role, "error", err)
	}
}

// copyRecordWhat names the copy record in a storage error.
const copyRecordWhat = "the state of the copy of all sites"

// loadCopyRecord reads the record of a role's last copy, nil if none.
func (b *backend) loadCopyRecord(ctx context.Context, s logical.Storage, roleName string) (*copyRecord, error) {
	return getJSON[copyRecord](ctx, s, copyRecordKey(roleName), copyRecordWhat)
}

// copyStatus is the state of the role's last copy of all sites, nil if none
// is known: this node's job, else the stored record. A record that says
// running while no job runs here is interrupted where this node is the one
// that would run it.
func (b *backend) copyStatus(ctx context.Context, s logical.Storage, roleName string) (map[string]interface{}, error) {
	b.copiesMu.Lock()
	job := b.copies[roleName]
	b.copiesMu.Unlock()
	if job != nil && (job.running() || job.hasList()) {
		rec := job.snapshot()
		return rec.status(), nil
	}
	rec, err := b.loadCopyRecord(ctx, s, roleName)
	if err != nil || rec == nil {
		return nil, err
	}
	if rec.State == copyRunning && b.WriteSafeReplicationState() {
		rec.State = copyInterrupted
	}
	return rec.status(), nil
}

// forgetCopy drops what this node knows of a deleted role's copies.
func (b *backend) forgetCopy(roleName string) {
	b.copiesMu.Lock()
	defer b.copiesMu.Unlock()
	delete(b.copies, roleName)
}
