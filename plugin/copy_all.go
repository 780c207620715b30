package plugin

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// copyAnswerWithin is the longest a copy of all sites keeps its request
// waiting: well inside the CLI's 60s client timeout and Vault's default
// max_request_duration of 90s. A shorter request deadline shortens it.
const copyAnswerWithin = 30 * time.Second

// copyAnswerMargin is kept free before a request deadline to build the answer.
const copyAnswerMargin = 5 * time.Second

// copySummaryTimeout bounds the storage work of the answer itself.
const copySummaryTimeout = 10 * time.Second

// maxNamesInWarning bounds the site names a warning lists.
const maxNamesInWarning = 20

func (b *backend) pathCredsCopyAll(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName := d.Get("role").(string)
	r, err := b.requireRole(ctx, req, roleName)
	if err != nil {
		return nil, err
	}
	job, attached, err := b.startCopy(ctx, req.Storage, roleName, r)
	if err != nil {
		return nil, err
	}
	waitForCopy(ctx, job)
	if err := job.listError(); err != nil {
		return nil, err
	}
	// The request's own context may be all but spent: the answer is built
	// under one of its own.
	summaryCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), copySummaryTimeout)
	defer cancel()
	stored, err := b.storedSites(summaryCtx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	return copyAnswer(req, job, attached, stored), nil
}

// waitForCopy waits until the job ends, the answer is due, or the caller
// has gone.
func waitForCopy(ctx context.Context, job *copyJob) {
	wait := copyAnswerWithin
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		wait = min(wait, left-min(left/4, copyAnswerMargin))
	}
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	select {
	case <-job.done:
	case <-timer.C:
	case <-ctx.Done():
	}
}

// copyAnswer is the answer of a copy of all sites: its state (as the
// all-sites read shows it), the sites copied and unchanged so far, and the
// stored sites the API no longer lists.
func copyAnswer(req *logical.Request, job *copyJob, attached bool, stored []string) *logical.Response {
	rec := job.snapshot()
	data := rec.status()
	job.mu.Lock()
	results := append([]siteCopyResult(nil), job.results...)
	listed := append([]string(nil), job.queue...)
	job.mu.Unlock()
	data["copied"] = sitesWith(results, outcomeCopied)
	data["unchanged"] = sitesWith(results, outcomeUnchanged)

	resp := &logical.Response{Data: data}
	watch := "vault read " + mountPath(req, "creds/"+job.role+"/sites/")
	switch {
	case rec.State == copyRunning && attached:
		resp.AddWarning(fmt.Sprintf("a copy of all sites started at %s is still running; this is its progress, no second copy was started; watch it with: %s",
			rec.Started.UTC().Format(time.RFC3339), watch))
	case rec.State == copyRunning:
		resp.AddWarning(fmt.Sprintf("the copy continues in the background: %d of %d site(s) left; watch it with: %s",
			data["left"], rec.Total, watch))
	case rec.State == copyStopped:
		resp.AddWarning(fmt.Sprintf("the copy stopped with %d of %d site(s) left: %s", data["left"], rec.Total, rec.Stopped))
	}
	if rec.FailedCount > 0 {
		resp.AddWarning(fmt.Sprintf("%d of %d site(s) failed and were left as they were; see \"failed\" and run the copy again (failed sites go first)",
			rec.FailedCount, rec.Total))
	}
	if rec.State == copyFinished {
		notAtAPI := notListed(stored, results, listed)
		data["not_at_api"] = notAtAPI
		if len(notAtAPI) > 0 {
			resp.AddWarning(fmt.Sprintf("%d stored site(s) are no longer listed by the API and were kept: %s",
				len(notAtAPI), namesForWarning(notAtAPI)))
		}
	}
	return resp
}

// notListed are the stored sites the copy did not see at the API.
func notListed(stored []string, results []siteCopyResult, queued []string) []string {
	listed := make(map[string]bool, len(results)+len(queued))
	for _, res := range results {
		listed[res.site] = true
	}
	for _, site := range queued {
		listed[site] = true
	}
	out := []string{}
	for _, site := range stored {
		if !listed[site] {
			out = append(out, site)
		}
	}
	sort.Strings(out)
	return out
}

// namesForWarning lists names, the first maxNamesInWarning of them.
func namesForWarning(names []string) string {
	if len(names) <= maxNamesInWarning {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxNamesInWarning], ", "), len(names)-maxNamesInWarning)
}
