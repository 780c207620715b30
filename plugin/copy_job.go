package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// A copy of all sites runs as a job: the request that starts it answers
// within Vault's deadline with the progress so far, and the job goes on in
// the background on the active node until every listed site is done or
// Clean stops it. One job per role runs at a time; its record in storage
// lets every node show its state and lets the next copy retry first what
// failed.

// States of a copy of all sites.
const (
	copyRunning     = "running"
	copyFinished    = "finished"
	copyStopped     = "stopped"     // ended before every site was done; says why
	copyInterrupted = "interrupted" // its record says running, but no node runs it
)

// copyWorkersPerSlot is how many workers a copy has for each call its window
// may have in flight at most. Only as many as the window can use copy at a
// time (see enterWorker); the others stand in for workers waiting out a
// refusal's Retry-After.
const copyWorkersPerSlot = 4

// copyJob is one copy of all sites of a role.
type copyJob struct {
	role    string
	corp    string
	ceiling int // copy_max_concurrency
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{} // closed once the job has ended and saved its record

	mu       sync.Mutex
	listed   bool
	queue    []string // sites not yet taken, in copy order
	requeued map[string]bool
	total    int
	results  []siteCopyResult
	listErr  error
	stopped  string
	finished time.Time

	saveMu sync.Mutex // saves run one at a time, each with the newest state
}

// siteCopyResult is the outcome of copying one site during a copy of all.
type siteCopyResult struct {
	site    string
	outcome string
	err     error
}

// running reports whether the job has not ended yet.
func (j *copyJob) running() bool {
	select {
	case <-j.done:
		return false
	default:
		return true
	}
}

// stop ends the job early for the given reason.
func (j *copyJob) stop(reason string) {
	j.mu.Lock()
	if j.stopped == "" {
		j.stopped = reason
	}
	j.mu.Unlock()
	j.cancel()
}

// setListed queues the listed sites, those that failed last time first.
func (j *copyJob) setListed(sites []sigsci.Site, failedBefore map[string]bool) {
	first, rest := []string{}, make([]string, 0, len(sites))
	for _, s := range sites {
		if failedBefore[s.Name] {
			first = append(first, s.Name)
		} else {
			rest = append(rest, s.Name)
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.listed = true
	j.queue = append(first, rest...)
	j.total = len(j.queue)
}

// next takes the next site to copy.
func (j *copyJob) next() (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.queue) == 0 {
		return "", false
	}
	site := j.queue[0]
	j.queue = j.queue[1:]
	return site, true
}

// retryLater puts a site whose copy failed for a passing reason at the end
// of the queue, once; it reports whether it did.
func (j *copyJob) retryLater(res siteCopyResult) bool {
	if res.err == nil || isPermanentAPIError(res.err) || errors.Is(res.err, errCopyRoleGone) {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.requeued[res.site] {
		return false
	}
	j.requeued[res.site] = true
	j.queue = append(j.queue, res.site)
	return true
}

// record keeps a site's outcome and reports whether a checkpoint is due.
func (j *copyJob) record(res siteCopyResult) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.results = append(j.results, res)
	return len(j.results)%copyCheckpointEvery == 0
}

// snapshot is the job's state as a record.
func (j *copyJob) snapshot() copyRecord {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec := copyRecord{State: copyRunning, Started: j.started, Total: j.total, Failed: map[string]string{}, Stopped: j.stopped}
	for _, res := range j.results {
		switch {
		case res.err != nil:
			rec.FailedCount++
			if len(rec.Failed) < maxRecordedFailures {
				rec.Failed[res.site] = res.err.Error()
			}
		case res.outcome == outcomeCopied:
			rec.Copied++
		default:
			rec.Unchanged++
		}
	}
	if !j.finished.IsZero() {
		rec.Finished = j.finished
		rec.State = copyFinished
		if j.stopped != "" {
			rec.State = copyStopped
		}
	}
	return rec
}

// hasList reports whether the job got the site list (a job whose list
// failed copied nothing and says nothing about the sites).
func (j *copyJob) hasList() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.listed
}

// listError is why the job could not list the sites, if it could not.
func (j *copyJob) listError() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.listErr
}

// failedSites are the sites whose copy failed.
func (j *copyJob) failedSites() map[string]bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	failed := map[string]bool{}
	for _, res := range j.results {
		if res.err != nil {
			failed[res.site] = true
		}
	}
	return failed
}

// runningCopy is the role's copy running on this node, if any.
func (b *backend) runningCopy(role string) *copyJob {
	b.copiesMu.Lock()
	defer b.copiesMu.Unlock()
	if j := b.copies[role]; j != nil && j.running() {
		return j
	}
	return nil
}

// startCopy starts a copy of all sites of a role, or returns the one that
// runs already (attached is then true). Only a node that may write runs a
// copy: elsewhere Vault forwards the request to one that may.
func (b *backend) startCopy(ctx context.Context, s logical.Storage, roleName string, r *roleEntry) (job *copyJob, attached bool, err error) {
	if !b.WriteSafeReplicationState() {
		return nil, false, logical.ErrReadOnly
	}
	b.copiesMu.Lock()
	defer b.copiesMu.Unlock()
	if j := b.copies[roleName]; j != nil && j.running() {
		return j, true, nil
	}
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		return nil, false, err
	}
	failedBefore, err := b.lastFailedSites(ctx, s, roleName)
	if err != nil {
		return nil, false, err
	}
	jobCtx, cancel := context.WithCancel(b.jobsCtx)
	job = &copyJob{
		role: roleName, corp: r.Corp, ceiling: cfg.copyMaxConcurrency(),
		started: b.now(), cancel: cancel, done: make(chan struct{}),
		requeued: map[string]bool{},
	}
	b.copies[roleName] = job
	b.jobsWG.Add(1)
	go func() {
		defer b.jobsWG.Done()
		b.runCopy(jobCtx, s, job, failedBefore)
	}()
	return job, false, nil
}

// lastFailedSites are the sites the role's last copy failed on: from this
// node's memory, else from the stored record.
func (b *backend) lastFailedSites(ctx context.Context, s logical.Storage, roleName string) (map[string]bool, error) {
	if j := b.copies[roleName]; j != nil && j.hasList() {
		return j.failedSites(), nil
	}
	rec, err := b.loadCopyRecord(ctx, s, roleName)
	if err != nil || rec == nil {
		return nil, err
	}
	failed := make(map[string]bool, len(rec.Failed))
	for site := range rec.Failed {
		failed[site] = true
	}
	return failed, nil
}

// runCopy lists the corp's sites and copies them with up to ceiling
// workers; the client's window decides how many calls are in flight.
func (b *backend) runCopy(ctx context.Context, s logical.Storage, job *copyJob, failedBefore map[string]bool) {
	defer close(job.done)
	defer job.cancel()
	sites, limit, err := b.listForCopy(ctx, s, job)
	if err != nil {
		job.mu.Lock()
		job.listErr = err
		job.finished = b.now()
		job.mu.Unlock()
		return
	}
	job.setListed(sites, failedBefore)
	b.saveCopy(ctx, s, job)

	var wg sync.WaitGroup
	for range job.ceiling * copyWorkersPerSlot {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.runCopyWorker(ctx, s, job, limit)
		}()
	}
	wg.Wait()
	job.mu.Lock()
	if ctx.Err() != nil && job.stopped == "" {
		job.stopped = stopReasonClean
	}
	job.finished = b.now()
	job.mu.Unlock()
	b.saveCopy(ctx, s, job)
}

// listForCopy reads the corp's site list with the role as it is now, and
// returns the window of the client that read it.
func (b *backend) listForCopy(ctx context.Context, s logical.Storage, job *copyJob) ([]sigsci.Site, *adaptiveLimit, error) {
	r, c, err := b.roleForCopy(ctx, s, job)
	if err != nil {
		return nil, nil, err
	}
	sites, err := c.api.ListSites(ctx, r.Corp)
	if err != nil {
		return nil, nil, upstreamError(fmt.Sprintf("listing the sites of corp %q", r.Corp), err)
	}
	return sites, c.limit, nil
}

// errCopyRoleGone stops a copy whose role was deleted or moved to another corp.
var errCopyRoleGone = errors.New("the role was deleted or now names another corp; the copy stopped")

// roleForCopy loads the job's role and its API client; the role must still
// exist and name the job's corp.
func (b *backend) roleForCopy(ctx context.Context, s logical.Storage, job *copyJob) (*roleEntry, cachedClient, error) {
	r, err := b.loadRole(ctx, s, job.role)
	if err != nil {
		return nil, cachedClient{}, err
	}
	if r == nil || r.Corp != job.corp {
		job.stop(errCopyRoleGone.Error())
		return nil, cachedClient{}, errCopyRoleGone
	}
	c, err := b.copyClient(job.role, r, job.ceiling)
	return r, c, err
}

// runCopyWorker copies queued sites, each once the window admits it, until the
// queue is empty or the job stops. A site whose copy failed for a passing
// reason (rate limiting, 5xx, a timeout) is tried once more at the end.
func (b *backend) runCopyWorker(ctx context.Context, s logical.Storage, job *copyJob, limit *adaptiveLimit) {
	for {
		callCtx, w, err := limit.enterWorker(ctx)
		if err != nil {
			return
		}
		site, ok := job.next()
		if !ok {
			limit.leaveWorker(w)
			return
		}
		res := b.copyListedSite(callCtx, s, job, site)
		limit.leaveWorker(w)
		if ctx.Err() != nil {
			return // cut short: the site is left, not failed
		}
		if job.retryLater(res) {
			continue
		}
		if job.record(res) {
			b.saveCopy(ctx, s, job)
		}
	}
}

// copyListedSite copies one site under the role's shared lock, so the role
// can neither vanish nor change corp while its keys are stored.
func (b *backend) copyListedSite(ctx context.Context, s logical.Storage, job *copyJob, site string) siteCopyResult {
	defer b.rlockRole(job.role)()
	r, c, err := b.roleForCopy(ctx, s, job)
	if err != nil {
		return siteCopyResult{site: site, err: err}
	}
	return b.copyOne(ctx, s, job.role, r, c.api, site)
}

func (b *backend) copyOne(ctx context.Context, s logical.Storage, roleName string, r *roleEntry, client keysAPI, site string) siteCopyResult {
	if err := validateSite(site); err != nil {
		return siteCopyResult{site: site, err: fmt.Errorf("the API listed a site name Vault cannot store: %w", err)}
	}
	_, outcome, err := b.copySite(ctx, s, roleName, r, client, site)
	return siteCopyResult{site: site, outcome: outcome, err: err}
}

// sitesWith returns the sites of results with the given outcome, sorted.
func sitesWith(results []siteCopyResult, outcome string) []string {
	out := []string{}
	for _, res := range results {
		if res.err == nil && res.outcome == outcome {
			out = append(out, res.site)
		}
	}
	slices.Sort(out)
	return out
}
