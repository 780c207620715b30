package systemdtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Two user managers in the same cgroup share it as their root: both run
// dbus.service in <root>/app.slice/dbus.service, and one stopping or
// restarting a unit kills the other's processes (its bus connection dies with
// EOF). So each manager gets a cgroup of its own, created beside the
// hierarchy's root, in every hierarchy systemd tracks processes in.

// cgroupHierarchies are the mounted hierarchies systemd uses: the unified
// one (cgroup v2), and in hybrid mode also the named v1 "systemd" one.
func cgroupHierarchies() []string {
	const root = "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return []string{root} // pure cgroup v2
	}
	var dirs []string
	for _, name := range []string{"systemd", "unified"} {
		dir := filepath.Join(root, name)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// makeCgroups creates a cgroup named name in each hierarchy and returns
// their directories. On failure nothing is left behind.
func makeCgroups(name string) ([]string, error) {
	var made []string
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			removeCgroups(made)
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		made = append(made, dir)
	}
	if len(made) == 0 {
		return nil, fmt.Errorf("no writable cgroup hierarchy found")
	}
	return made, nil
}

// removeCgroups kills whatever is left in the cgroups (a manager killed
// without stopping its units leaves them behind) and removes them, deepest
// first.
func removeCgroups(dirs []string) {
	for _, dir := range dirs {
		var all []string
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, path)
			}
			return nil
		})
		for _, d := range all {
			killProcs(d)
		}
		sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
		removeDirs(all)
	}
}

// removeDirs removes empty cgroups; one whose killed processes are still
// exiting is busy for a moment, so removal is retried for a bounded time.
func removeDirs(dirs []string) {
	deadline := time.Now().Add(2 * time.Second)
	for _, d := range dirs {
		for {
			err := os.Remove(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling a kernel state with a deadline
		}
	}
}

func killProcs(cgroup string) {
	data, err := os.ReadFile(filepath.Join(cgroup, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, field := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(field); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
