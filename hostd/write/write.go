// Package write owns putting one file on disk atomically: the destination
// holds either its old bytes or its new bytes, never a partial file.
//
// It compares the new content with what is on disk, writes a temporary file in
// the destination's directory, syncs it, sets mode and owner, renames it over
// the destination and syncs the directory. It hands back the previous content
// as a Snapshot, can keep it on disk as a backup, and puts a Snapshot back.
// It removes the temporary files a killed process left (RemoveLeftovers).
// Writes to one destination from this process never interleave. It knows
// nothing of Vault, templates or systemd, and it never logs: callers decide
// what to report.
package write

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// DefaultPerms is the mode of a written file when Options.Perms is zero.
const DefaultPerms os.FileMode = 0o600

// Options says how the destination must look after a write.
type Options struct {
	// Perms is the destination's permission bits (0 means DefaultPerms).
	// Only permission bits are accepted: no setuid, setgid or sticky bit.
	Perms os.FileMode
	// User and Group name the destination's owner, as a name or a numeric
	// id. Empty leaves the owner as the process creates files.
	User, Group string
	// Backup keeps the destination's previous content as BackupPath(dest),
	// with the previous mode and owner, whenever the content changes.
	Backup bool
}

// Result says what a write did.
type Result struct {
	// Changed is true when the destination's bytes changed (a new file counts
	// as changed). A mode- or owner-only fix is not a change.
	Changed bool
	// Backup is the path holding the previous content, when Changed, a
	// previous file existed and Options.Backup was set.
	Backup string
	// Previous is the destination as it was before the write, when Changed
	// and a previous file existed, whether or not a backup was kept.
	Previous *Snapshot
}

// Snapshot is a file's content, mode and owner at one moment: what a
// rollback puts back with Put.
type Snapshot struct {
	content []byte
	meta    meta
}

// Format prints the snapshot's size, mode and owner, for every fmt verb:
// never its content, which holds whatever the template rendered (the
// agent's secret key). Its receiver is a value, unlike the other methods',
// so that a Snapshot copied into a value formats the same way.
func (s Snapshot) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "write.Snapshot{%d bytes, mode %#o, uid %d, gid %d}", len(s.content), uint32(s.meta.mode), s.meta.uid, s.meta.gid)
}

// Content returns the snapshot's bytes; the caller must not modify them.
func (s *Snapshot) Content() []byte { return s.content }

// BackupPath is where Write keeps the previous content of dest.
func BackupPath(dest string) string { return dest + ".bak" }

// meta is the mode and owner a file must end up with; -1 leaves an id as is.
type meta struct {
	mode     os.FileMode
	uid, gid int
}

// Write makes dest hold content with the mode and owner opts asks for.
//
// When dest already has these bytes, mode and owner nothing is written. On any
// error before the final rename, dest is untouched and no temporary file is
// left behind. An error after the rename (syncing the directory) is returned
// together with a Result that says what changed.
func Write(dest string, content []byte, opts Options) (Result, error) {
	defer lockDestination(dest)()
	want, err := wantedMeta(opts)
	if err != nil {
		return Result{}, fmt.Errorf("write %s: %w", dest, err)
	}
	old, oldMeta, err := readRegular(dest)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("write %s: %w", dest, err)
	}
	exists := err == nil
	sameBytes := exists && bytes.Equal(old, content)
	if sameBytes && oldMeta.satisfies(want) {
		return Result{}, nil
	}

	// Stage the new file first: a failure here (owner, mode, disk) must not
	// touch dest or its backup.
	tmp, err := stage(dest, content, want)
	if err != nil {
		return Result{}, fmt.Errorf("write %s: %w", dest, err)
	}
	var res Result
	if exists && !sameBytes && opts.Backup {
		bak := BackupPath(dest)
		if err := replace(bak, old, oldMeta); err != nil {
			os.Remove(tmp)
			return Result{}, fmt.Errorf("write %s: keep previous content as %s: %w", dest, bak, err)
		}
		res.Backup = bak
	}
	if err := commit(tmp, dest); err != nil {
		if errors.Is(err, errDirSync) {
			return Result{Changed: !sameBytes, Backup: res.Backup}, fmt.Errorf("write %s: %w", dest, err)
		}
		return Result{}, fmt.Errorf("write %s: %w", dest, err)
	}
	res.Changed = !sameBytes
	if res.Changed && exists {
		res.Previous = &Snapshot{content: old, meta: oldMeta}
	}
	return res, nil
}

// ReadSnapshot reads path (a regular file) with its mode and owner.
func ReadSnapshot(path string) (*Snapshot, error) {
	data, m, err := readRegular(path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	return &Snapshot{content: data, meta: m}, nil
}

// Put makes dest hold the snapshot's content, mode and owner, atomically.
func Put(dest string, s *Snapshot) error {
	defer lockDestination(dest)()
	if err := replace(dest, s.content, s.meta); err != nil {
		return fmt.Errorf("put back %s: %w", dest, err)
	}
	return nil
}

// destinationLocks holds one mutex per destination written by this process,
// so a rollback's Put and a render's Write of the same file run one after
// the other: each reads the file it replaces, and its Result must describe
// what it really replaced.
var destinationLocks sync.Map // cleaned path → *sync.Mutex

func lockDestination(path string) (unlock func()) {
	m, _ := destinationLocks.LoadOrStore(filepath.Clean(path), new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// wantedMeta turns Options into the mode and ids to set.
func wantedMeta(opts Options) (meta, error) {
	m := meta{mode: opts.Perms, uid: -1, gid: -1}
	if m.mode == 0 {
		m.mode = DefaultPerms
	}
	if m.mode&^fs.ModePerm != 0 {
		return meta{}, fmt.Errorf("perms %#o: only permission bits (0000-0777) are allowed", uint32(opts.Perms))
	}
	var err error
	if opts.User != "" {
		if m.uid, err = lookupID("user", opts.User, userID); err != nil {
			return meta{}, err
		}
	}
	if opts.Group != "" {
		if m.gid, err = lookupID("group", opts.Group, groupID); err != nil {
			return meta{}, err
		}
	}
	return m, nil
}

// lookupID turns an owner user or group (kind) into its numeric id: name is
// the id itself, or a name that lookup resolves to one.
func lookupID(kind, name string, lookup func(string) (string, error)) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	id, err := lookup(name)
	if err != nil {
		return 0, fmt.Errorf("owner %s %q: %w", kind, name, err)
	}
	return strconv.Atoi(id)
}

func userID(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func groupID(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}

// readRegular reads path and its mode and owner. A path that exists but is not
// a regular file (a directory, a symlink, a device) is an error: replacing it
// would silently change what the operator set up.
func readRegular(path string) ([]byte, meta, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, meta{}, err
	}
	if !info.Mode().IsRegular() {
		return nil, meta{}, fmt.Errorf("%s is not a regular file (%s); point the destination at a plain file", path, info.Mode().Type())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, meta{}, err
	}
	m := meta{mode: info.Mode().Perm(), uid: -1, gid: -1}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		m.uid, m.gid = int(st.Uid), int(st.Gid)
	}
	return data, m, nil
}

// satisfies reports whether a file with meta have already looks as want asks.
func (have meta) satisfies(want meta) bool {
	return have.mode == want.mode &&
		(want.uid < 0 || want.uid == have.uid) &&
		(want.gid < 0 || want.gid == have.gid)
}

var errDirSync = errors.New("file replaced but its directory could not be synced")

// replace atomically makes path hold content with mode and owner m.
// On failure path is as it was and no temporary file is left.
func replace(path string, content []byte, m meta) error {
	tmp, err := stage(path, content, m)
	if err != nil {
		return err
	}
	return commit(tmp, path)
}

// stage writes content to a new temporary file beside path (created
// exclusively, mode 0600 while it is written), syncs it and sets its owner and
// mode. It returns the temporary file's name; on error nothing is left behind.
func stage(path string, content []byte, m meta) (tmp string, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, tempPattern(base))
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(content); err != nil {
		return "", fmt.Errorf("write temporary file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync temporary file: %w", err)
	}
	if m.uid >= 0 || m.gid >= 0 {
		if err := f.Chown(m.uid, m.gid); err != nil {
			return "", fmt.Errorf("set owner %d:%d: %w", m.uid, m.gid, err)
		}
	}
	// After chown: changing the owner may clear mode bits.
	if err := f.Chmod(m.mode); err != nil {
		return "", fmt.Errorf("set mode %#o: %w", uint32(m.mode), err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close temporary file: %w", err)
	}
	return f.Name(), nil
}

// commit renames the staged file tmp over path and syncs the directory, so
// the rename survives a crash. If the rename fails, tmp is removed.
func commit(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename into place: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w: %w", errDirSync, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
