// Package statefile owns how hostd keeps a stage's memory in its state
// directory: one JSON file with a layout version, read once at start (a
// missing, unreadable or other-version file means starting without it),
// written atomically with mode 0600, and a failed write logged once until a
// write works again.
//
// What a file holds, and what losing it costs, belong to the stage that owns
// it (hostd/running, hostd/report); this package only names that cost in its
// log lines.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// File is one state file. It is not safe for concurrent use: its owner
// serialises Load and Save.
type File struct {
	Path    string // "" keeps nothing on disk
	Version int    // the owner's layout; the file's "version" must match it
	Logger  *slog.Logger
	// Name is what the log lines call the file ("state file").
	Name string
	// LostOnRead and LostOnWrite say, for the log, what starting without the
	// file costs, and what a failed write will cost after a restart of hostd.
	LostOnRead, LostOnWrite string

	failing bool // the last Save failed (and was logged)
}

// Load decodes the file into v, a pointer to the owner's content (whose JSON
// carries the layout as "version"), and reports whether it did. A missing
// file is quietly false; an unreadable one or one of another version is
// false with a warning. v is to be used only when Load returns true.
func (f *File) Load(v any) bool {
	if f.Path == "" {
		return false
	}
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	var head struct {
		Version int `json:"version"`
	}
	if err == nil {
		err = json.Unmarshal(data, &head)
	}
	if err == nil && head.Version == f.Version {
		err = json.Unmarshal(data, v)
	}
	switch {
	case err != nil:
		f.Logger.Warn(fmt.Sprintf("%s unreadable: starting without it; %s", f.Name, f.LostOnRead), "path", f.Path, "err", err)
		return false
	case head.Version != f.Version:
		f.Logger.Warn(f.Name+" of another hostd version: starting without it", "path", f.Path, "version", head.Version)
		return false
	}
	return true
}

// Save writes v (the owner's content, its "version" set) in place of the
// file. A failure is logged once until a Save works again; the owner goes on
// with what it holds in memory.
func (f *File) Save(v any) {
	if f.Path == "" {
		return
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		_, err = write.Write(f.Path, append(data, '\n'), write.Options{Perms: 0o600})
	}
	switch {
	case err == nil && f.failing:
		f.Logger.Info(f.Name+" written again", "path", f.Path)
	case err != nil && !f.failing:
		f.Logger.Warn(fmt.Sprintf("cannot write the %s: %s", f.Name, f.LostOnWrite), "path", f.Path, "err", err)
	}
	f.failing = err != nil
}
