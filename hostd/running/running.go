// Package running knows what content each unit's running process was
// started on: for every file the unit reads, the digest of that content and
// since when. It is the one place that answers "does this unit run on its
// current files?", both for a restart owed across a restart of hostd itself
// and for reporting which content (which key) a host's agent runs.
//
// The answer compares the unit's main process, as systemd reports it (its
// start time), with each file: a process that started after the file got
// its current content runs on that content; one that started before it is
// owed a restart. File times are coarse (ModTimeResolution): a file
// stamped that close to the start counts as newer than the process, except
// that a process started by the restart under way (a Batch) runs on the
// content that restart was begun with. Whenever the comparison is made for
// a running process, the Tracker records that process (invocation id, PID,
// start) with the digests it runs on; while the same process runs, the
// record decides, so a clock step or the same bytes written again cannot
// mislead it.
//
// The Tracker also records the restart that hostd is doing right now (a
// Batch), so a hostd killed in the middle of one finds it at its next start
// and can finish the health check.
//
// Records are kept in memory and, when a state directory is given, in
// running.json there (mode 0600), written atomically. They hold unit names,
// paths, times and SHA-256 digests of the files, never their content. The
// package reads files and systemd's answers; it restarts nothing: that is
// hostd/rollout's job.
package running

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
)

// File is one file a unit reads, compared with the unit's running process.
type File struct {
	Destination string
	// Digest is the hex SHA-256 of the file's content now; empty when the
	// file cannot be read (it does not exist yet).
	Digest string
	// Running is the digest of the content the process started on; empty
	// when it is not known (Owed, or no such file when it started).
	Running string
	Since   time.Time // when the process started on Running
	// Owed: the process started before the file got its current content.
	Owed bool
}

// Assessment is what a unit's process runs on, file by file.
type Assessment struct {
	Unit    string
	Process restart.Process
	Files   []File // empty when the unit is not running
}

// Owed returns the files the unit's process has not started on.
func (a Assessment) Owed() []string {
	var owed []string
	for _, f := range a.Files {
		if f.Owed {
			owed = append(owed, f.Destination)
		}
	}
	return owed
}

// Event is the assessment as an event.Running at now.
func (a Assessment) Event(now time.Time) event.Running {
	e := event.Running{Time: now, Unit: a.Unit}
	for _, f := range a.Files {
		e.Files = append(e.Files, event.RunningFile{Destination: f.Destination, Digest: f.Running, Since: f.Since})
	}
	return e
}

// Digest returns the hex SHA-256 of content, the form used everywhere here.
func Digest(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// ReadDigest returns the digest of the file at path and when its content
// was last written.
func ReadDigest(path string) (digest string, modified time.Time, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", time.Time{}, err
	}
	if !info.Mode().IsRegular() {
		return "", time.Time{}, fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", time.Time{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), info.ModTime(), nil
}

// ModTimeResolution is how far a file's modification time may trail the
// moment it was written. Linux stamps a file from its coarse clock, which
// moves once per scheduler tick (at most 10ms apart, at HZ=100), while
// systemd stamps a process's start from the precise clock: a file written
// a few milliseconds after a process started can look older than it. A file
// modified less than this before a process started is taken as written
// after it: a restart too many, rather than a process left on old content.
const ModTimeResolution = 10 * time.Millisecond

// assess compares process p with each destination, using rec when it was
// made for the same process.
func assess(unit string, p restart.Process, destinations []string, rec *unitRecord) Assessment {
	a := Assessment{Unit: unit, Process: p}
	if !p.Running() {
		return a
	}
	known := rec.sameProcess(p)
	for _, dest := range destinations {
		f := File{Destination: dest}
		digest, modified, err := ReadDigest(dest)
		if err == nil {
			f.Digest = digest
		}
		switch {
		case known && rec.Files[dest] != "":
			f.Running, f.Since = rec.Files[dest], p.Started
			f.Owed = f.Running != f.Digest
		case err != nil:
			// No file to run on: nothing is owed for it.
		case rec.restartedWith(p, dest, digest):
			f.Running, f.Since = digest, p.Started
		case modified.After(p.Started.Add(-ModTimeResolution)):
			// Written after the start, or too close to it to tell.
			f.Owed = true
		default:
			f.Running, f.Since = digest, p.Started
		}
		a.Files = append(a.Files, f)
	}
	return a
}
