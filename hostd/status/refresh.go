package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// This file holds the client side of `hostd refresh`: ask hostd to read
// every secret again (AskRefresh, client.go), wait until every template has
// rendered since, and say what each render did.

// refreshPoll spaces the snapshot reads while Refresh waits.
const refreshPoll = 100 * time.Millisecond

// RefreshReport is what one refresh did to each template.
type RefreshReport struct {
	Asked     time.Time     // when hostd was asked
	Took      time.Duration // from the ask until every template had rendered
	Templates []RefreshedTemplate
}

// RefreshedTemplate is one template's render after the ask.
type RefreshedTemplate struct {
	Destination string
	Changed     bool   // the render changed the file
	Err         string // the render failed: the file is as it was
}

// Failed counts the templates whose render failed.
func (r RefreshReport) Failed() int {
	n := 0
	for _, t := range r.Templates {
		if t.Err != "" {
			n++
		}
	}
	return n
}

// AskError is Refresh's error when hostd never took the ask: it does not
// answer on the socket, or it refused (it renders no template).
type AskError struct{ Err error }

func (e *AskError) Error() string { return e.Err.Error() }
func (e *AskError) Unwrap() error { return e.Err }

// Refresh asks the hostd listening on socketPath to read every secret again
// now and waits, until ctx is done, for every template to render (or fail)
// since the ask. An error is an *AskError when hostd never took the ask;
// otherwise not every template rendered in time.
func Refresh(ctx context.Context, socketPath string) (RefreshReport, error) {
	asked := time.Now()
	if err := AskRefresh(ctx, socketPath); err != nil {
		return RefreshReport{}, &AskError{Err: err}
	}
	snap, err := waitForRenders(ctx, socketPath, asked)
	if err != nil {
		return RefreshReport{Asked: asked}, err
	}
	report := RefreshReport{Asked: asked, Took: time.Since(asked)}
	for _, t := range snap.Templates {
		report.Templates = append(report.Templates, RefreshedTemplate{
			Destination: t.Destination,
			Changed:     t.LastError == "" && !t.LastChange.Before(asked),
			Err:         t.LastError,
		})
	}
	return report, nil
}

// waitForRenders polls hostd until every template has been rendered (or has
// failed) since asked.
func waitForRenders(ctx context.Context, socketPath string, asked time.Time) (Snapshot, error) {
	ticker := time.NewTicker(refreshPoll)
	defer ticker.Stop()
	for {
		snap, err := Fetch(ctx, socketPath)
		if err == nil && renderedSince(snap, asked) {
			return snap, nil
		}
		select {
		case <-ctx.Done():
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return snap, fmt.Errorf("waiting for the renders: %w", err)
			}
			return snap, errors.New("not every template rendered within the timeout; see hostd status")
		case <-ticker.C:
		}
	}
}

func renderedSince(snap Snapshot, asked time.Time) bool {
	for _, t := range snap.Templates {
		if t.LastRender.Before(asked) {
			return false
		}
	}
	return true
}

// WriteRefresh writes r for `hostd refresh`: one line per template
// (destination, tab, changed, unchanged or failed with the error), then a
// summary.
func WriteRefresh(w io.Writer, r RefreshReport) error {
	for _, t := range r.Templates {
		result := "unchanged"
		switch {
		case t.Err != "":
			result = "failed: " + t.Err
		case t.Changed:
			result = "changed"
		}
		if _, err := fmt.Fprintf(w, "%s\t%s\n", t.Destination, result); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "refreshed %d template(s) in %s; restarts follow the restart policy (hostd status)\n",
		len(r.Templates), r.Took.Round(time.Millisecond))
	return err
}
