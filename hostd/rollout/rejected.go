package rollout

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"time"
)

// A change a unit did not survive is rendered again on every refresh, as
// long as its source (the secret, the template) stays the same. Restarting
// the unit for it each time would be a restart loop of the WAF agent, every
// refresh interval. So rollout remembers the digest of each destination's
// rejected content; a batch whose every destination holds exactly the
// rejected content again gets its backups restored without a restart. Any
// other content is tried normally. The memory lasts for the process: hostd
// restarted (e.g. after an agent upgrade that accepts the content) tries
// again.

type rejection struct {
	digest [sha256.Size]byte
	at     time.Time
}

// digests reads the batch's destinations as they are now (the content about
// to be rolled back). Unreadable files are left out.
func digests(b *batch) map[string][sha256.Size]byte {
	out := make(map[string][sha256.Size]byte, len(b.changes))
	for _, c := range b.changes {
		if data, err := os.ReadFile(c.Destination); err == nil {
			out[c.Destination] = sha256.Sum256(data)
		}
	}
	return out
}

// remember records the content of the restored destinations as rejected.
func (r *Rollout) remember(rejected map[string][sha256.Size]byte, restored []string) {
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, dest := range restored {
		if d, ok := rejected[dest]; ok {
			r.rejected[dest] = rejection{digest: d, at: now}
		}
	}
}

// rejectedBefore reports whether every destination of the batch holds
// content that was rejected before, and when that happened last.
func (r *Rollout) rejectedBefore(b *batch) (time.Time, bool) {
	now := digests(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Time
	for _, c := range b.changes {
		rej, ok := r.rejected[c.Destination]
		if !ok || now[c.Destination] != rej.digest || c.Previous == nil {
			return time.Time{}, false
		}
		if rej.at.After(last) {
			last = rej.at
		}
	}
	return last, len(b.changes) > 0
}

// Refuse answers an error when content is what destination held when its
// unit did not survive it; the renderer then keeps the restored file
// instead of writing the same content again on every refresh.
func (r *Rollout) Refuse(destination string, content []byte) error {
	digest := sha256.Sum256(content)
	r.mu.Lock()
	defer r.mu.Unlock()
	rej, ok := r.rejected[destination]
	if !ok || rej.digest != digest {
		return nil
	}
	return fmt.Errorf("not written: this content of %s made its unit fail at %s and was rolled back; the previous file stays until the secret or the template changes",
		destination, rej.at.Format(time.RFC3339))
}

// rejectAgain puts the backups back without restarting the unit.
func (r *Rollout) rejectAgain(ctx context.Context, b *batch, when time.Time) {
	restored, problems := r.restoreBackups(b)
	why := fmt.Sprintf("%s got the content %s did not survive at %s again; restored the previous content without a restart",
		strings.Join(restored, ", "), b.unit, when.Format(time.RFC3339))
	if len(problems) > 0 {
		why += "; " + strings.Join(problems, "; ")
	}
	state, _ := r.restarter.UnitState(ctx, b.unit)
	r.publish(b.unit, attempt{result: ResultRejected, state: state}, true, why)
}
