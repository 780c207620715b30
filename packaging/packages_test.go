package packaging

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"testing"
)

// packaged is every path hostd's packages must install, with its mode and
// owner. Directories that only lead to these (/usr, /etc, ...) are not listed.
var packaged = []packagedPath{
	{"/usr/bin/hostd", 0o755, "root", "root", kindFile},
	{"/usr/lib/systemd/system/hostd.service", 0o644, "root", "root", kindFile},
	{"/usr/share/polkit-1/rules.d/50-hostd.rules", 0o644, "root", "root", kindFile},
	{"/etc/hostd", fs.ModeDir | 0o750, "root", "hostd", kindDir},
	{"/etc/hostd/hostd.hcl", 0o640, "root", "hostd", kindConfig},
	{"/etc/hostd/templates", fs.ModeDir | 0o750, "root", "hostd", kindDir},
	{"/etc/hostd/templates/agent.ctmpl", 0o640, "root", "hostd", kindConfig},
	{"/etc/hostd/templates/documented.ctmpl", 0o640, "root", "hostd", kindConfig},
	{"/etc/sigsci", fs.ModeDir | 0o770, "root", "hostd", kindDir},
	{"/var/lib/hostd", fs.ModeDir | 0o750, "hostd", "hostd", kindDir},
	{"/usr/share/hostd/prometheus/hostd-alerts.yml", 0o644, "root", "root", kindFile},
	{"/usr/share/hostd/prometheus/hostd-records.yml", 0o644, "root", "root", kindFile},
	{"/usr/share/doc/hostd/README.md", 0o644, "root", "root", kindFile},
	{"/usr/share/doc/hostd/vault/host.hcl", 0o644, "root", "root", kindFile},
	{"/usr/share/doc/hostd/vault/approle-example.sh", 0o644, "root", "root", kindFile},
}

// sources maps installed files to the files in this repository they must
// be byte for byte.
var sources = map[string]string{
	"/usr/lib/systemd/system/hostd.service":         "systemd/hostd.service",
	"/usr/share/polkit-1/rules.d/50-hostd.rules":    "polkit/50-hostd.rules",
	"/etc/hostd/hostd.hcl":                          "etc/hostd.hcl",
	"/etc/hostd/templates/agent.ctmpl":              "../templates/agent.ctmpl",
	"/etc/hostd/templates/documented.ctmpl":         "../templates/documented.ctmpl",
	"/usr/share/hostd/prometheus/hostd-alerts.yml":  "prometheus/hostd-alerts.yml",
	"/usr/share/hostd/prometheus/hostd-records.yml": "prometheus/hostd-records.yml",
	"/usr/share/doc/hostd/README.md":                "README.md",
	"/usr/share/doc/hostd/vault/host.hcl":           "vault/host.hcl",
	"/usr/share/doc/hostd/vault/approle-example.sh": "vault/approle-example.sh",
}

type pathKind int

const (
	kindFile   pathKind = iota
	kindConfig          // a configuration file: never replaced once edited
	kindDir
)

type packagedPath struct {
	path         string
	mode         fs.FileMode
	owner, group string
	kind         pathKind
}

// listedPath is one line of a package listing.
type listedPath struct {
	mode         fs.FileMode
	owner, group string
	flags        string // rpm file flags (c = config, n = noreplace)
}

func TestDebContents(t *testing.T) {
	listing := map[string]listedPath{}
	for _, line := range strings.Split(strings.TrimSpace(runOK(t, "", "dpkg-deb", "--contents", release.deb)), "\n") {
		// drwxr-x--- root/hostd         0 2025-11-25 22:34 ./etc/hostd/
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("unexpected dpkg-deb --contents line %q", line)
		}
		mode, err := parsePerms(f[0])
		if err != nil {
			t.Fatal(err)
		}
		owner, group, _ := strings.Cut(f[1], "/")
		path := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		listing[path] = listedPath{mode: mode, owner: owner, group: group}
	}
	checkListing(t, listing)

	conffiles := strings.Fields(runOK(t, "", "sh", "-c", `dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles`, "sh", release.deb))
	checkSameSet(t, "conffiles", conffiles, pathsOfKind(kindConfig))

	fields := map[string]string{}
	for _, name := range []string{"Package", "Version", "Architecture", "Pre-Depends", "Recommends"} {
		fields[name] = strings.TrimSpace(runOK(t, "", "dpkg-deb", "--field", release.deb, name))
	}
	want := map[string]string{
		"Package":      "hostd",
		"Version":      strings.Replace(release.version, "-", "~", 1) + "-1",
		"Architecture": "amd64",
		"Pre-Depends":  "passwd", // useradd, run before unpacking
		"Recommends":   "polkitd",
	}
	for name, value := range want {
		if fields[name] != value {
			t.Errorf("control field %s: %q, want %q", name, fields[name], value)
		}
	}

	info := runOK(t, "", "dpkg-deb", "--info", release.deb)
	for _, script := range []string{"preinst", "postinst", "prerm", "postrm"} {
		if !strings.Contains(info, "*  "+script) {
			t.Errorf("maintainer script %s missing or not executable:\n%s", script, info)
		}
	}
}

func TestRPMContents(t *testing.T) {
	const format = `[%{FILEFLAGS:fflags}|%{FILEMODES:perms}|%{FILEUSERNAME}|%{FILEGROUPNAME}|%{FILENAMES}\n]`
	listing := map[string]listedPath{}
	for _, line := range strings.Split(strings.TrimSpace(runOK(t, "", "rpm", "-qp", "--queryformat", format, release.rpm)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 5 {
			t.Fatalf("unexpected rpm listing line %q", line)
		}
		mode, err := parsePerms(f[1])
		if err != nil {
			t.Fatal(err)
		}
		listing[f[4]] = listedPath{mode: mode, owner: f[2], group: f[3], flags: f[0]}
	}
	checkListing(t, listing)
	for _, p := range packaged {
		flags := listing[p.path].flags
		isConfig := strings.Contains(flags, "c")
		if isConfig != (p.kind == kindConfig) {
			t.Errorf("%s: rpm file flags %q, config file: %v, want %v", p.path, flags, isConfig, p.kind == kindConfig)
		}
		if p.kind == kindConfig && !strings.Contains(flags, "n") {
			t.Errorf("%s: rpm file flags %q, want noreplace (n)", p.path, flags)
		}
	}

	// The listing must agree with what `rpm -qlp` and `rpm -qcp` say.
	checkSameSet(t, "rpm -qlp", strings.Fields(runOK(t, "", "rpm", "-qlp", release.rpm)), keys(listing))
	checkSameSet(t, "rpm -qcp", strings.Fields(runOK(t, "", "rpm", "-qcp", release.rpm)), pathsOfKind(kindConfig))

	version, rel, _ := strings.Cut(strings.TrimSpace(runOK(t, "", "rpm", "-qp", "--queryformat", `%{VERSION}|%{RELEASE}|%{ARCH}`, release.rpm)), "|")
	if want := strings.Replace(release.version, "-", "~", 1); version != want {
		t.Errorf("rpm version %q, want %q", version, want)
	}
	if rel != "1|x86_64" {
		t.Errorf("rpm release|arch %q, want 1|x86_64", rel)
	}
	scripts := runOK(t, "", "rpm", "-qp", "--scripts", release.rpm)
	for _, name := range []string{"preinstall", "postinstall", "preuninstall", "postuninstall"} {
		if !strings.Contains(scripts, name+" scriptlet") {
			t.Errorf("rpm has no %s scriptlet:\n%s", name, scripts)
		}
	}
	if out := runOK(t, "", "rpm", "--checksig", "--nosignature", release.rpm); !strings.Contains(out, "digests OK") {
		t.Errorf("rpm digests: %s", out)
	}
}

// checkListing compares a package listing with the packaged table: every
// path with its mode and owner, no other file, and only plain root-owned
// 0755 directories leading to them.
func checkListing(t *testing.T, listing map[string]listedPath) {
	t.Helper()
	want := map[string]packagedPath{}
	for _, p := range packaged {
		want[p.path] = p
		got, ok := listing[p.path]
		switch {
		case !ok:
			t.Errorf("%s: not in the package", p.path)
		case got.mode != p.mode || got.owner != p.owner || got.group != p.group:
			t.Errorf("%s: %v %s:%s, want %v %s:%s", p.path, got.mode, got.owner, got.group, p.mode, p.owner, p.group)
		}
	}
	for path, got := range listing {
		if _, ok := want[path]; ok || path == "" {
			continue
		}
		if !got.mode.IsDir() {
			t.Errorf("%s: unexpected file in the package", path)
			continue
		}
		if got.mode != fs.ModeDir|0o755 || got.owner != "root" || got.group != "root" {
			t.Errorf("%s: leading directory is %v %s:%s, want drwxr-xr-x root:root", path, got.mode, got.owner, got.group)
		}
	}
}

// parsePerms turns an ls-style mode ("drwxr-x---") into a FileMode.
func parsePerms(s string) (fs.FileMode, error) {
	if len(s) != 10 {
		return 0, fmt.Errorf("mode %q: want 10 characters", s)
	}
	var mode fs.FileMode
	switch s[0] {
	case '-':
	case 'd':
		mode |= fs.ModeDir
	case 'l':
		mode |= fs.ModeSymlink
	default:
		return 0, fmt.Errorf("mode %q: unknown file type", s)
	}
	for i := 0; i < 9; i++ {
		switch c := s[1+i]; {
		case c == '-':
		case c == "rwxrwxrwx"[i]:
			mode |= 1 << (8 - i)
		default:
			return 0, fmt.Errorf("mode %q: special bits are not expected here", s)
		}
	}
	return mode, nil
}

func pathsOfKind(kind pathKind) []string {
	var paths []string
	for _, p := range packaged {
		if p.kind == kind {
			paths = append(paths, p.path)
		}
	}
	return paths
}

func keys(m map[string]listedPath) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func checkSameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = append([]string(nil), got...), append([]string(nil), want...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}
