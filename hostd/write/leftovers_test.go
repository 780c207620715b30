package write

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRemoveLeftoversOfAKilledWrite: a process killed between staging and
// renaming leaves the staged file (stage without commit is exactly that);
// RemoveLeftovers removes it and the backup's, and nothing else.
func TestRemoveLeftoversOfAKilledWrite(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "agent.conf")
	writeFile(t, dest, "current\n", 0o600)
	writeFile(t, BackupPath(dest), "previous\n", 0o600)
	m := meta{mode: 0o600, uid: -1, gid: -1}
	staged, err := stage(dest, []byte("secretaccesskey=new\n"), m)
	if err != nil {
		t.Fatal(err)
	}
	stagedBackup, err := stage(BackupPath(dest), []byte("current\n"), m)
	if err != nil {
		t.Fatal(err)
	}

	// Look-alikes that are not this package's leftovers of dest.
	writeFile(t, filepath.Join(dir, ".agent.conf.tmp-notes"), "an operator's file\n", 0o600)
	writeFile(t, filepath.Join(dir, ".other.conf.tmp-123"), "another destination's\n", 0o600)
	writeFile(t, filepath.Join(dir, "agent.conf.tmp-123"), "no leading dot\n", 0o600)
	if err := os.Mkdir(filepath.Join(dir, ".agent.conf.tmp-555"), 0o700); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "elsewhere.conf")
	writeFile(t, outside, "not hostd's\n", 0o600)
	if err := os.Symlink(outside, filepath.Join(dir, ".agent.conf.tmp-777")); err != nil {
		t.Fatal(err)
	}

	removed, err := RemoveLeftovers(dest)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{staged, stagedBackup}
	slices.Sort(want)
	slices.Sort(removed)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	assertOnly(t, dir, "agent.conf", "agent.conf.bak", ".agent.conf.tmp-notes", ".other.conf.tmp-123",
		"agent.conf.tmp-123", ".agent.conf.tmp-555", ".agent.conf.tmp-777")
	assertContent(t, dest, "current\n")
	assertContent(t, BackupPath(dest), "previous\n")
	assertContent(t, outside, "not hostd's\n")

	// Nothing left: nothing to do.
	if removed, err := RemoveLeftovers(dest); err != nil || len(removed) != 0 {
		t.Errorf("second sweep: %q, %v", removed, err)
	}
}

func TestRemoveLeftoversWithoutTheDirectory(t *testing.T) {
	removed, err := RemoveLeftovers(filepath.Join(t.TempDir(), "absent", "agent.conf"))
	if err != nil || len(removed) != 0 {
		t.Errorf("missing directory: %q, %v; want nothing and no error", removed, err)
	}
}
