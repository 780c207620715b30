package running

import (
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/statefile"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
)

// StateFile is the name of the Tracker's file in the state directory.
const StateFile = "running.json"

// stateVersion is the layout of StateFile; a file of another version is
// not read (the comparison with file times still works without it).
const stateVersion = 1

// Batch is a restart hostd has begun and not finished.
type Batch struct {
	Begun time.Time   `json:"begun"`
	Files []BatchFile `json:"files"`
}

// BatchFile is one file a Batch restarts its unit for.
type BatchFile struct {
	Destination string `json:"destination"`
	// Digest is the content the unit is restarted with.
	Digest string `json:"digest"`
	// Previous is the content a rollback puts back; empty when none.
	Previous string `json:"previous,omitempty"`
}

// unitRecord is what the Tracker keeps for one unit.
type unitRecord struct {
	// The process last seen running on known content, and what it runs on
	// (destination → digest).
	InvocationID string            `json:"invocation_id,omitempty"`
	MainPID      uint32            `json:"main_pid,omitempty"`
	Started      time.Time         `json:"started,omitzero"`
	Files        map[string]string `json:"files,omitempty"`
	// Batch is the restart under way, if any.
	Batch *Batch `json:"batch,omitempty"`
}

func (rec *unitRecord) sameProcess(p restart.Process) bool {
	return rec != nil && rec.InvocationID != "" && rec.InvocationID == p.InvocationID &&
		rec.MainPID == p.MainPID && rec.Started.Equal(p.Started)
}

// restartedWith reports whether p was started by the batch under way, on
// the content digest it restarted dest with: p started after the batch
// began and dest still holds that content. The batch read it before the
// restart was issued, so file times, too coarse this close to the start,
// need not decide.
func (rec *unitRecord) restartedWith(p restart.Process, dest, digest string) bool {
	if rec == nil || rec.Batch == nil || !p.Started.After(rec.Batch.Begun) {
		return false
	}
	for _, f := range rec.Batch.Files {
		if f.Destination == dest {
			return f.Digest != "" && f.Digest == digest
		}
	}
	return false
}

type stateContent struct {
	Version int                    `json:"version"`
	Units   map[string]*unitRecord `json:"units"`
}

// Tracker keeps, per unit, what its running process runs on and the restart
// under way. It is safe for concurrent use.
type Tracker struct {
	file *statefile.File

	mu    sync.Mutex
	units map[string]*unitRecord
	last  map[string]Assessment
}

// New returns a Tracker keeping its records in dir (the state directory;
// "" for memory only), starting from what an earlier hostd left there. A
// missing or unreadable file starts empty, with a warning in logger.
func New(dir string, logger *slog.Logger) *Tracker {
	var path string
	if dir != "" {
		path = filepath.Join(dir, StateFile)
	}
	t := &Tracker{units: map[string]*unitRecord{}, last: map[string]Assessment{}, file: &statefile.File{
		Path: path, Version: stateVersion, Logger: logger, Name: "state file",
		LostOnRead:  "units are compared with their files' times",
		LostOnWrite: "a restart under way is not remembered across a restart of hostd",
	}}
	var content stateContent
	if t.file.Load(&content) && content.Units != nil {
		t.units = content.Units
	}
	return t
}

// Assess compares unit's process p with the files it reads, records the
// result, and returns it.
func (t *Tracker) Assess(unit string, p restart.Process, destinations []string) Assessment {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.units[unit]
	a := assess(unit, p, destinations, rec)
	t.last[unit] = a
	next := &unitRecord{}
	if rec != nil {
		next.Batch = rec.Batch
	}
	if p.Running() {
		next.InvocationID, next.MainPID, next.Started = p.InvocationID, p.MainPID, p.Started
		next.Files = map[string]string{}
		for _, f := range a.Files {
			if f.Running != "" {
				next.Files[f.Destination] = f.Running
			}
		}
	}
	t.set(unit, next)
	return a
}

// Last returns the last assessment of unit, if any.
func (t *Tracker) Last(unit string) (Assessment, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.last[unit]
	return a, ok
}

// Begin records that a restart of unit for b's files is about to be issued.
func (t *Tracker) Begin(unit string, b Batch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.copyOf(unit)
	rec.Batch = &b
	t.set(unit, rec)
}

// Settle records that unit's restart has ended (whatever its outcome).
func (t *Tracker) Settle(unit string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rec := t.units[unit]; rec == nil || rec.Batch == nil {
		return
	}
	rec := t.copyOf(unit)
	rec.Batch = nil
	t.set(unit, rec)
}

// Unfinished returns the restart of unit that was begun and not settled,
// by this process or by an earlier hostd.
func (t *Tracker) Unfinished(unit string) (Batch, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.units[unit]
	if rec == nil || rec.Batch == nil {
		return Batch{}, false
	}
	return *rec.Batch, true
}

func (t *Tracker) copyOf(unit string) *unitRecord {
	if rec := t.units[unit]; rec != nil {
		c := *rec
		return &c
	}
	return &unitRecord{}
}

// set replaces unit's record and saves; the caller holds t.mu.
func (t *Tracker) set(unit string, rec *unitRecord) {
	if rec.InvocationID == "" && rec.Batch == nil {
		delete(t.units, unit)
	} else {
		t.units[unit] = rec
	}
	t.save()
}

// save writes the records; a failure is logged (once, until a save works
// again) and the records stay in memory.
func (t *Tracker) save() {
	t.file.Save(stateContent{Version: stateVersion, Units: t.units})
}
