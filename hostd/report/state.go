package report

import (
	"log/slog"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/statefile"
)

// StateFile is the name of the Reporter's file in the state directory. It
// lets a restarted hostd report the key of content it rendered before: a
// unit owed a restart across hostd's restart still runs that content.
const StateFile = "report.json"

// stateVersion is the layout of StateFile; a file of another version is
// not read.
const stateVersion = 1

type stateContent struct {
	Version int `json:"version"`
	// Contents: destination → digests of its recent contents, and the
	// creds secrets and access key ids each came from.
	Contents map[string]*content `json:"contents"`
	// LastKnown: unit → the keys it ran when last known in full.
	LastKnown map[string][]entry `json:"last_known,omitempty"`
}

// newStateFile returns the table's file at path ("" keeps nothing on disk).
func newStateFile(path string, logger *slog.Logger) *statefile.File {
	return &statefile.File{
		Path: path, Version: stateVersion, Logger: logger, Name: "report state",
		LostOnRead:  "a unit owed a restart is reported after it",
		LostOnWrite: "after a restart of hostd, a unit owed a restart is reported only after it",
	}
}

// loadTable returns the table an earlier hostd left in f, or an empty one.
func loadTable(f *statefile.File) *table {
	t := newTable()
	var c stateContent
	if !f.Load(&c) {
		return t
	}
	for dest, ct := range c.Contents {
		if ct != nil && ct.Creds != nil {
			t.contents[dest] = ct
		}
	}
	for unit, es := range c.LastKnown {
		t.lastKnown[unit] = es
	}
	return t
}

// saveTable writes t to f.
func saveTable(f *statefile.File, t *table) {
	f.Save(stateContent{Version: stateVersion, Contents: t.contents, LastKnown: t.lastKnown})
}
