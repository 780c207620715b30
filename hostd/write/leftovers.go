package write

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tempMarker sits between a destination's name and the random part of the
// temporary files staged for it: ".agent.conf.tmp-1234567890".
const tempMarker = ".tmp-"

// tempPattern is the os.CreateTemp pattern of the temporary files staged
// beside a file named base.
func tempPattern(base string) string { return "." + base + tempMarker + "*" }

// isTempOf reports whether name is a temporary file staged for a file named
// base: the pattern's prefix followed by os.CreateTemp's random digits.
func isTempOf(name, base string) bool {
	random, ok := strings.CutPrefix(name, "."+base+tempMarker)
	if !ok || random == "" {
		return false
	}
	for _, c := range random {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// RemoveLeftovers deletes the temporary files that a Write or Put of dest
// (or of its backup) left in dest's directory when the process was killed
// between staging and renaming: they hold content meant for dest, possibly
// a secret, and nothing else would ever remove them.
//
// Only regular files named like this package's temporary files for dest
// are removed; symlinks, directories and every other name are left alone,
// and nothing is followed. It returns the paths it removed. A missing
// directory is not an error.
func RemoveLeftovers(dest string) (removed []string, err error) {
	defer lockDestination(dest)()
	dir, base := filepath.Split(dest)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look for leftovers of %s: %w", dest, err)
	}
	bakBase := filepath.Base(BackupPath(dest))
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !isTempOf(name, base) && !isTempOf(name, bakBase) {
			continue
		}
		if !e.Type().IsRegular() { // ReadDir does not follow symlinks
			continue
		}
		path := filepath.Join(dir, name)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove leftover %s: %w", path, err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}
