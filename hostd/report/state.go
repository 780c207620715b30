package report

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"

	"github.com/sigsci-keys/sigsci-keys/hostd/write"
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

// stateFile keeps the table's contents and last known keys on disk (mode
// 0600, written atomically).
type stateFile struct {
	path    string // "" keeps nothing on disk
	logger  *slog.Logger
	failing bool // the last save failed (and was logged)
}

// load returns the table an earlier hostd left, or an empty one.
func (s *stateFile) load() *table {
	t := newTable()
	if s.path == "" {
		return t
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return t
	}
	var c stateContent
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	switch {
	case err != nil:
		s.logger.Warn("report state unreadable: starting without it; a unit owed a restart is reported after it", "path", s.path, "err", err)
	case c.Version != stateVersion:
		s.logger.Warn("report state of another hostd version: starting without it", "path", s.path, "version", c.Version)
	default:
		for dest, ct := range c.Contents {
			if ct != nil && ct.Creds != nil {
				t.contents[dest] = ct
			}
		}
		for unit, es := range c.LastKnown {
			t.lastKnown[unit] = es
		}
	}
	return t
}

// save writes t; a failure is logged once until a save works again.
func (s *stateFile) save(t *table) {
	if s.path == "" {
		return
	}
	data, err := json.MarshalIndent(stateContent{Version: stateVersion, Contents: t.contents, LastKnown: t.lastKnown}, "", "  ")
	if err == nil {
		_, err = write.Write(s.path, append(data, '\n'), write.Options{Perms: 0o600})
	}
	switch {
	case err == nil && s.failing:
		s.logger.Info("report state written again", "path", s.path)
	case err != nil && !s.failing:
		s.logger.Warn("cannot write the report state: after a restart of hostd, a unit owed a restart is reported only after it", "path", s.path, "err", err)
	}
	s.failing = err != nil
}
