package write

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// mustWrite writes content to dest and fails the test on an error.
func mustWrite(t *testing.T, dest string, content []byte, opts Options) Result {
	t.Helper()
	res, err := Write(dest, content, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// existingConf returns a new directory holding only agent.conf, with
// content and mode, and the path of that file.
func existingConf(t *testing.T, content string, mode os.FileMode) (dir, dest string) {
	t.Helper()
	dir = t.TempDir()
	dest = filepath.Join(dir, "agent.conf")
	writeFile(t, dest, content, mode)
	return dir, dest
}

func stat(t *testing.T, path string) (os.FileMode, *syscall.Stat_t) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm(), info.Sys().(*syscall.Stat_t)
}

func assertContent(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s holds %q, want %q", filepath.Base(path), got, want)
	}
}

// assertOnly fails unless dir holds exactly the named entries: no temporary
// file may survive a write, failed or not.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("directory holds %q, want exactly %q", got, names)
	}
}

func TestNewFileGetsContentAndPerms(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "agent.conf")

	res := mustWrite(t, dest, []byte("key=1\n"), Options{Perms: 0o640, Backup: true})
	if !res.Changed || res.Backup != "" {
		t.Fatalf("result %+v, want changed and no backup for a new file", res)
	}
	assertContent(t, dest, "key=1\n")
	if mode, _ := stat(t, dest); mode != 0o640 {
		t.Fatalf("mode %#o, want 0640", mode)
	}
	assertOnly(t, dir, "agent.conf")
}

func TestDefaultPermsAre0600WhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dest := filepath.Join(t.TempDir(), "agent.conf")

	mustWrite(t, dest, []byte("x"), Options{})
	if mode, _ := stat(t, dest); mode != 0o600 {
		t.Fatalf("mode %#o, want 0600", mode)
	}
}

func TestSameBytesAreNotWrittenAgain(t *testing.T) {
	dir, dest := existingConf(t, "same\n", 0o600)
	_, before := stat(t, dest)

	res := mustWrite(t, dest, []byte("same\n"), Options{Perms: 0o600, Backup: true})
	if res.Changed || res.Backup != "" {
		t.Fatalf("result %+v, want unchanged", res)
	}
	if _, after := stat(t, dest); after.Ino != before.Ino || after.Mtim != before.Mtim {
		t.Fatal("the file was rewritten although its bytes and mode were already right")
	}
	assertOnly(t, dir, "agent.conf")
}

func TestChangedContentKeepsBackupWithOldPerms(t *testing.T) {
	dir, dest := existingConf(t, "old\n", 0o640)

	res := mustWrite(t, dest, []byte("new\n"), Options{Perms: 0o600, Backup: true})
	if !res.Changed || res.Backup != dest+".bak" {
		t.Fatalf("result %+v, want changed with backup %s.bak", res, dest)
	}
	assertContent(t, dest, "new\n")
	assertContent(t, res.Backup, "old\n")
	if mode, _ := stat(t, dest); mode != 0o600 {
		t.Fatalf("destination mode %#o, want 0600", mode)
	}
	if mode, _ := stat(t, res.Backup); mode != 0o640 {
		t.Fatalf("backup mode %#o, want the previous file's 0640", mode)
	}
	assertOnly(t, dir, "agent.conf", "agent.conf.bak")
}

func TestNoBackupUnlessAsked(t *testing.T) {
	dir, dest := existingConf(t, "old\n", 0o600)

	res := mustWrite(t, dest, []byte("new\n"), Options{})
	if !res.Changed || res.Backup != "" {
		t.Fatalf("result %+v, want changed without backup", res)
	}
	assertOnly(t, dir, "agent.conf")
}

func TestModeOnlyFixIsNotAChange(t *testing.T) {
	dir, dest := existingConf(t, "same\n", 0o644)

	res := mustWrite(t, dest, []byte("same\n"), Options{Perms: 0o600, Backup: true})
	if res.Changed || res.Backup != "" {
		t.Fatalf("result %+v, want no content change and no backup", res)
	}
	if mode, _ := stat(t, dest); mode != 0o600 {
		t.Fatalf("mode %#o, want it fixed to 0600", mode)
	}
	assertOnly(t, dir, "agent.conf")
}

func TestOwnerByIDAndByName(t *testing.T) {
	if os.Geteuid() != 0 {
		skipUnlessCI(t, "setting a file's owner needs root")
	}
	nobody, err := user.LookupId("65534")
	if err != nil {
		skipUnlessCI(t, fmt.Sprintf("no user with uid 65534 on this machine: %v", err))
	}
	dir := t.TempDir()

	byID := filepath.Join(dir, "by-id")
	mustWrite(t, byID, []byte("x"), Options{User: "65534", Group: "65534"})
	if _, st := stat(t, byID); st.Uid != 65534 || st.Gid != 65534 {
		t.Fatalf("owner %d:%d, want 65534:65534", st.Uid, st.Gid)
	}

	byName := filepath.Join(dir, "by-name")
	mustWrite(t, byName, []byte("x"), Options{User: nobody.Username})
	if _, st := stat(t, byName); st.Uid != 65534 || st.Gid != uint32(os.Getegid()) {
		t.Fatalf("owner %d:%d, want 65534:%d (group untouched)", st.Uid, st.Gid, os.Getegid())
	}

	// Same bytes, owner differs: fixed, and not reported as a change.
	res := mustWrite(t, byName, []byte("x"), Options{User: "0"})
	if _, st := stat(t, byName); res.Changed || st.Uid != 0 {
		t.Fatalf("result %+v owner %d, want owner fixed to 0 without a content change", res, st.Uid)
	}
}

func TestPutRestoresThePreviousContent(t *testing.T) {
	dir, dest := existingConf(t, "good\n", 0o640)
	res := mustWrite(t, dest, []byte("bad\n"), Options{Perms: 0o600})
	if res.Previous == nil || string(res.Previous.Content()) != "good\n" {
		t.Fatalf("Previous %+v, want the old content", res.Previous)
	}

	if err := Put(dest, res.Previous); err != nil {
		t.Fatal(err)
	}
	assertContent(t, dest, "good\n")
	if mode, _ := stat(t, dest); mode != 0o640 {
		t.Fatalf("restored mode %#o, want the previous 0640", mode)
	}
	assertOnly(t, dir, "agent.conf")
}

func TestPreviousOnlyWhenContentReplaced(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "agent.conf")
	res := mustWrite(t, dest, []byte("first\n"), Options{})
	if !res.Changed || res.Previous != nil {
		t.Fatalf("new file: result %+v, want changed without a previous content", res)
	}
	res = mustWrite(t, dest, []byte("first\n"), Options{Perms: 0o640})
	if res.Changed || res.Previous != nil {
		t.Fatalf("mode-only fix: result %+v, want no change and no previous content", res)
	}
}

func TestReadSnapshotOfBackupPutsItBack(t *testing.T) {
	dir, dest := existingConf(t, "good\n", 0o640)
	res := mustWrite(t, dest, []byte("bad\n"), Options{Perms: 0o600, Backup: true})
	snap, err := ReadSnapshot(res.Backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := Put(dest, snap); err != nil {
		t.Fatal(err)
	}
	assertContent(t, dest, "good\n")
	assertContent(t, res.Backup, "good\n")
	if mode, _ := stat(t, dest); mode != 0o640 {
		t.Fatalf("restored mode %#o, want the backup's 0640", mode)
	}
	assertOnly(t, dir, "agent.conf", "agent.conf.bak")
}

func TestReadSnapshotOfMissingBackupFails(t *testing.T) {
	dir, dest := existingConf(t, "current\n", 0o600)

	_, err := ReadSnapshot(dest + ".bak")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err %v, want not-exist", err)
	}
	assertContent(t, dest, "current\n")
	assertOnly(t, dir, "agent.conf")
}

// A Put and Writes of the same destination from several goroutines never
// interleave: every Write's Previous is exactly a content the file really
// held, one of the versions written, never a mix or a stale read.
func TestWritesAndPutOfOneDestinationDoNotInterleave(t *testing.T) {
	_, dest := existingConf(t, "v0\n", 0o600)
	good, err := ReadSnapshot(dest)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var replaced []string // the Previous content of every changed Write
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if g == 0 && i%5 == 0 {
					if err := Put(dest, good); err != nil {
						t.Error(err)
					}
					continue
				}
				res, err := Write(dest, []byte(fmt.Sprintf("v%d-%d\n", g, i)), Options{})
				if err != nil {
					t.Error(err)
					return
				}
				if res.Previous != nil {
					mu.Lock()
					replaced = append(replaced, string(res.Previous.Content()))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	// Every content a Write replaced was written once by a Write or a Put,
	// and each Write's content is replaced at most once (by the next
	// operation), so no content appears more often than it was written.
	seen := map[string]int{}
	for _, c := range replaced {
		seen[c]++
	}
	for c, n := range seen {
		if c == "v0\n" {
			continue // the initial content and every Put write it
		}
		if n > 1 {
			t.Fatalf("%q was replaced %d times: two writes read the same old file", c, n)
		}
	}
}

func TestBadInputLeavesOldFile(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"unknown user", Options{User: "no-such-user-hostd"}},
		{"unknown group", Options{Group: "no-such-group-hostd"}},
		{"setuid bit", Options{Perms: 0o4755}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, dest := existingConf(t, "old\n", 0o600)

			if _, err := Write(dest, []byte("new\n"), c.opts); err == nil {
				t.Fatal("write succeeded, want an error")
			} else {
				t.Log(err)
			}
			assertContent(t, dest, "old\n")
			assertOnly(t, dir, "agent.conf")
		})
	}
}

func TestSymlinkDestinationIsRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.conf")
	writeFile(t, target, "old\n", 0o600)
	dest := filepath.Join(dir, "agent.conf")
	if err := os.Symlink(target, dest); err != nil {
		t.Fatal(err)
	}

	if _, err := Write(dest, []byte("new\n"), Options{}); err == nil {
		t.Fatal("write through a symlink succeeded, want an error")
	}
	assertContent(t, target, "old\n")
	if info, err := os.Lstat(dest); err != nil || info.Mode().Type() != fs.ModeSymlink {
		t.Fatal("the symlink was replaced")
	}
}

func TestFailedBackupLeavesOldFile(t *testing.T) {
	dir, dest := existingConf(t, "old\n", 0o600)
	// A non-empty directory where the backup goes: the backup's rename fails.
	if err := os.MkdirAll(filepath.Join(dest+".bak", "x"), 0o700); err != nil {
		t.Fatal(err)
	}

	if _, err := Write(dest, []byte("new\n"), Options{Backup: true}); err == nil {
		t.Fatal("write succeeded although the backup could not be kept")
	}
	assertContent(t, dest, "old\n")
	assertOnly(t, dir, "agent.conf", "agent.conf.bak")
}

// TestReadersNeverSeePartialFile rewrites a large file over and over while
// another goroutine reads it: every read must see one whole version.
func TestReadersNeverSeePartialFile(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "agent.conf")
	versions := [][]byte{bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("b"), 1<<20)}
	mustWrite(t, dest, versions[0], Options{})

	done := make(chan struct{})
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			got, err := os.ReadFile(dest)
			if err != nil {
				readErr = err
				return
			}
			if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
				readErr = errors.New("read a file that is neither the old nor the new version (" + strconv.Itoa(len(got)) + " bytes)")
				return
			}
		}
	}()
	for i := 1; i <= 40; i++ {
		mustWrite(t, dest, versions[i%2], Options{Backup: true})
	}
	close(done)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	assertOnly(t, dir, "agent.conf", "agent.conf.bak")
}

// Failures that only the kernel can produce for root: the child process runs
// this test binary in a user namespace where only uid/gid 0 are mapped, so a
// chown to any other id fails, and a directory owned by an unmapped user is not
// writable despite root's capabilities there.

const childEnv = "HOSTD_WRITE_CHILD_CASE"

func TestKernelRefusalsLeaveOldFile(t *testing.T) {
	cases := []struct {
		name     string
		dirOwner int
		dirMode  os.FileMode
	}{
		{"chown-unmapped-uid", 0, 0o755},
		{"unwritable-dir", 65534, 0o755},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, dest := existingConf(t, "old\n", 0o600)
			if c.dirOwner != 0 {
				if err := os.Chown(dir, c.dirOwner, c.dirOwner); err != nil {
					skipUnlessCI(t, "cannot set up the directory owner (needs root): "+err.Error())
				}
			}
			if err := os.Chmod(dir, c.dirMode); err != nil {
				t.Fatal(err)
			}

			out, err := runInUserNamespace(t, c.name, dest)
			if err != nil {
				t.Fatalf("child failed: %v\n%s", err, out)
			}
			t.Logf("child: %s", bytes.TrimSpace(out))
			assertContent(t, dest, "old\n")
			assertOnly(t, dir, "agent.conf")
		})
	}
}

func runInUserNamespace(t *testing.T, name, dest string) ([]byte, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildWrite$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+name, "HOSTD_WRITE_CHILD_DEST="+dest)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		skipUnlessCI(t, "cannot start a process in a user namespace: "+err.Error())
	}
	return out, err
}

// TestChildWrite is the child side of TestKernelRefusalsLeaveOldFile; it does
// nothing in a normal run.
func TestChildWrite(t *testing.T) {
	name := os.Getenv(childEnv)
	if name == "" {
		t.Skip("runs only as the child of TestKernelRefusalsLeaveOldFile")
	}
	dest := os.Getenv("HOSTD_WRITE_CHILD_DEST")
	opts := Options{Backup: true}
	if name == "chown-unmapped-uid" {
		opts.User = "1000"
	}
	_, err := Write(dest, []byte("new\n"), opts)
	if err == nil {
		t.Fatal("write succeeded, want the kernel to refuse it")
	}
	t.Logf("refused as expected: %v", err)
}

func skipUnlessCI(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: this test must run)", why)
	}
	t.Skip(why)
}

// A Result or Snapshot formatted into a log line or an error shows the
// content's size and mode, never the content: a rendered file holds the
// agent's secret key.
func TestFormattedSnapshotShowsNoContent(t *testing.T) {
	const secret = "secret_key = \"s3cr3t-must-not-leak\"\n"
	_, dest := existingConf(t, secret, 0o600)
	res := mustWrite(t, dest, []byte("secret_key = \"next\"\n"), Options{Perms: 0o600})
	if res.Previous == nil {
		t.Fatal("no previous content kept")
	}
	// The secret as text, as hex (%x of bytes) and as decimal bytes (%v, %d).
	leaks := []string{"s3cr3t", fmt.Sprintf("%x", "s3cr3t"), strings.Trim(fmt.Sprint([]byte("s3cr3t")), "[]")}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for _, v := range []any{res, &res, res.Previous, *res.Previous, []*Snapshot{res.Previous}} {
			out := fmt.Sprintf(verb, v)
			for _, leak := range leaks {
				if strings.Contains(out, leak) {
					t.Errorf("%s of %T shows the content: %s", verb, v, out)
				}
			}
		}
	}
	if out := fmt.Sprint(res.Previous); !strings.Contains(out, fmt.Sprint(len(secret))) || !strings.Contains(out, "0600") {
		t.Errorf("%%v of a snapshot = %q, want its size and mode", out)
	}
}
