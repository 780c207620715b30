package rollout

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// A change a unit did not survive is rendered again on every refresh, as
// long as its source (the secret, the template) stays the same. Restarting
// the unit for it each time would be a restart loop of the WAF agent, every
// refresh interval. So rollout remembers the digest of each destination's
// rejected content, taken when the failing restart was issued; a batch whose
// every destination holds exactly the rejected content again gets its
// backups restored without a restart, and the renderer is told not to write
// it (Refuse). Any other content is tried normally. A rejection lasts
// RetryRejectedAfter (the agent may have been fixed, or the failure was the
// host's), or until RetryRejected: hostd refresh calls it.

type digest = [sha256.Size]byte

type rejection struct {
	digest digest
	at     time.Time
}

// digests reads the batch's destinations as they are now. Unreadable files
// are left out.
func digests(b *batch) map[string]digest {
	out := make(map[string]digest, len(b.changes))
	for _, c := range b.changes {
		if data, err := os.ReadFile(c.Destination); err == nil {
			out[c.Destination] = sha256.Sum256(data)
		}
	}
	return out
}

// remember records the content of the restored destinations as rejected.
func (r *Rollout) remember(rejected map[string]digest, restored []string) {
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, dest := range restored {
		if d, ok := rejected[dest]; ok {
			r.rejected[dest] = rejection{digest: d, at: now}
		}
	}
}

// refused returns destination's rejection while it lasts. r.mu is held.
func (r *Rollout) refused(destination string) (rejection, bool) {
	rej, ok := r.rejected[destination]
	if !ok {
		return rejection{}, false
	}
	if !r.opts.Now().Before(rej.at.Add(r.opts.RetryRejectedAfter)) {
		delete(r.rejected, destination)
		return rejection{}, false
	}
	return rej, true
}

// RetryRejected forgets every rejected content, so the next render writes it
// and restarts its unit again. hostd refresh calls it: an operator asking for
// a fresh read after fixing the agent wants the new keys tried now.
func (r *Rollout) RetryRejected() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.rejected)
}

// rejectedBefore reports whether every destination of the batch holds
// content that was rejected before, and when that happened last.
func (r *Rollout) rejectedBefore(b *batch) (time.Time, bool) {
	now := digests(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Time
	for _, c := range b.changes {
		rej, ok := r.refused(c.Destination)
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
	d := sha256.Sum256(content)
	r.mu.Lock()
	defer r.mu.Unlock()
	rej, ok := r.refused(destination)
	if !ok || rej.digest != d {
		return nil
	}
	return fmt.Errorf("not written: this content of %s made its unit fail at %s and was rolled back; it is tried again at %s, or sooner on hostd refresh",
		destination, rej.at.Format(time.RFC3339), rej.at.Add(r.opts.RetryRejectedAfter).Format(time.RFC3339))
}

// rejectAgain puts the backups back without restarting the unit.
func (r *Rollout) rejectAgain(ctx context.Context, b *batch, when time.Time) {
	restored, problems := r.restoreBackups(b)
	why := fmt.Sprintf("%s got the content %s did not survive at %s again; restored the previous content without a restart",
		strings.Join(restored, ", "), b.unit, when.Format(time.RFC3339))
	if len(problems) > 0 {
		why += "; " + strings.Join(problems, "; ")
	}
	state, _ := r.unitState(ctx, b.unit)
	r.publish(b.unit, attempt{result: event.ResultRejected, state: state}, true, why)
}
