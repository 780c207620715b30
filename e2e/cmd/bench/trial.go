package main

import (
	"context"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

// trialResult is what one trial of one tool measured.
type trialResult struct {
	startToRender  time.Duration   // process start → first key in the file
	atStart, atEnd procSample      // after the first render; after the last rotation
	propagation    []time.Duration // rotate command returned → new key in the file
	rotating       time.Duration   // first render → last rotation rendered
	running        time.Duration   // process start → stop
	requests       requestCount
	tokenFiles     []string // files under the tool's directory holding a Vault token
	keyFiles       []string // files holding an agent secret key
	logLeaks       []string // what the tool's own log revealed
}

// runTrial sets up a fresh world, runs one tool in it through the rotations
// and measures it.
func runTrial(t testing.TB, programs *harness.Programs, root string, tl tool, o options) trialResult {
	t.Helper()
	w := newWorld(t, programs, root, o.mountRefresh)
	h := w.newHost(t.TempDir(), root, o.refresh, tl.short+".log")
	// A rotation reaches the file within one re-read, the tool's own or the
	// one the plugin's ttl hint asks for; allow three, and time to start.
	wait := 3*max(o.refresh, o.mountRefresh) + 30*time.Second
	var r trialResult
	secretKeys := []string{w.primary(t).SecretKey}

	started := time.Now()
	p := startTool(t, tl, h)
	r.startToRender = waitRendered(t, p, h, w.primary(t).AccessKey, started, wait, o.poll)
	r.atStart = sample(t, p)
	t.Logf("%s rendered the keys %s after it started", tl.name, r.startToRender.Round(time.Millisecond))

	for k := range o.rotations {
		// Rotations land at different points of the tool's refresh cycle.
		pause(t, time.Duration(float64(o.refresh)*(float64(k)+0.5)/float64(o.rotations)))
		ks := w.rotate(t)
		returned := time.Now()
		secretKeys = append(secretKeys, ks.SecretKey)
		d := waitRendered(t, p, h, ks.AccessKey, returned, wait, o.poll)
		r.propagation = append(r.propagation, d)
		t.Logf("%s rotation %d/%d reached the file in %s", tl.name, k+1, o.rotations, d.Round(time.Millisecond))
		w.retire(t)
	}
	r.atEnd = sample(t, p)
	r.rotating = time.Since(started) - r.startToRender

	var err error
	if r.tokenFiles, r.keyFiles, err = onDisk(h.dir, secretKeys); err != nil {
		t.Fatal(err)
	}
	p.stop(t)
	stopped := time.Now()
	r.running = stopped.Sub(started)
	if r.logLeaks, err = logLeaks(h.logPath, append(secretKeys, apiToken, w.vault.Token)); err != nil {
		t.Fatal(err)
	}
	credsPath := "sigsci/creds/" + roleName + "/sites/" + siteName
	if r.requests, err = countRequests(w.auditLog, credsPath, started, stopped); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitRendered waits for the destination to hold accessKey and returns the
// time since start; the tool must stay up meanwhile.
func waitRendered(t testing.TB, p *process, h host, accessKey string, start time.Time, wait, poll time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	go func() { // stop waiting as soon as the tool exits
		select {
		case <-p.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	d, err := waitForKey(ctx, h.destination, accessKey, start, poll)
	if err != nil {
		p.alive(t)
		t.Fatalf("%v\nlast lines of the tool's log:\n%s", err, tail(h.logPath, 30))
	}
	return d
}

func sample(t testing.TB, p *process) procSample {
	t.Helper()
	p.alive(t)
	s, err := sampleProc(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pause waits d, the design of the experiment rather than a wait for
// something to happen; an interrupt ends it.
func pause(t testing.TB, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
		t.Fatalf("interrupted")
	}
}
