package packaging

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// release describes the artifacts under test, built once for every test.
var release struct {
	dir     string // holds the artifacts
	version string // e.g. 0.0.0-gabc1234 (no leading v), as the plugin reports it
	stamped string // the version make was asked to stamp; "" when built elsewhere
	deb     string // path of hostd's .deb
	rpm     string // path of hostd's .rpm
}

// TestMain builds the release once with `make release` into a temporary
// directory, or uses SIGSCI_RELEASE_DIR when it names one already built.
func TestMain(m *testing.M) {
	cleanup, err := prepareRelease()
	if err != nil {
		fmt.Fprintln(os.Stderr, "packaging tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func prepareRelease() (cleanup func(), err error) {
	cleanup = func() {}
	dir := os.Getenv("SIGSCI_RELEASE_DIR")
	if dir == "" {
		tmp, err := os.MkdirTemp("", "sigsci-release-")
		if err != nil {
			return cleanup, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		dir = tmp
		out, err := exec.Command("./version.sh").Output()
		if err != nil {
			return cleanup, fmt.Errorf("version.sh: %w", err)
		}
		release.stamped = strings.TrimSpace(string(out))
		cmd := exec.Command("make", "-C", "..", "release", "DIST="+dir, "RELEASE_VERSION="+release.stamped)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return cleanup, fmt.Errorf("make release: %w", err)
		}
	}
	release.dir = dir
	if release.deb, err = onlyMatch(dir, "hostd_*_amd64.deb"); err != nil {
		return cleanup, err
	}
	if release.rpm, err = onlyMatch(dir, "hostd-*.x86_64.rpm"); err != nil {
		return cleanup, err
	}
	out, err := exec.Command(filepath.Join(dir, "vault-plugin-sigsci"), "-version").Output()
	if err != nil {
		return cleanup, fmt.Errorf("vault-plugin-sigsci -version: %w", err)
	}
	release.version = strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	return cleanup, nil
}

func onlyMatch(dir, pattern string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return "", err
	}
	if len(matches) != 1 {
		return "", fmt.Errorf("want exactly one %s in %s, found %d", pattern, dir, len(matches))
	}
	return matches[0], nil
}

// semver is the shape Vault accepts for a plugin version (without the v).
var semver = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

func TestReleaseVersionIsSemverFromGit(t *testing.T) {
	if !semver.MatchString(release.version) {
		t.Fatalf("plugin version %q is not semver", release.version)
	}
	if release.stamped != "" && release.version != release.stamped {
		t.Errorf("plugin says version %q, make release was given %q by version.sh", release.version, release.stamped)
	}
}

func TestPluginTarballHoldsOnlyTheStaticBinary(t *testing.T) {
	entries := readTarball(t, filepath.Join(release.dir, "vault-plugin-sigsci.tar.gz"))
	if len(entries) != 1 {
		t.Fatalf("tarball holds %d entries, want only vault-plugin-sigsci: %v", len(entries), entryNames(entries))
	}
	e := entries[0]
	if e.hdr.Name != "vault-plugin-sigsci" || e.hdr.Typeflag != tar.TypeReg {
		t.Fatalf("tarball entry %q (type %c), want the regular file vault-plugin-sigsci", e.hdr.Name, e.hdr.Typeflag)
	}
	if mode := e.hdr.FileInfo().Mode().Perm(); mode != 0o755 {
		t.Errorf("binary mode %v, want 0755", mode)
	}
	if e.hdr.Uid != 0 || e.hdr.Gid != 0 {
		t.Errorf("binary owned by %d:%d in the tarball, want 0:0", e.hdr.Uid, e.hdr.Gid)
	}
	loose, err := os.ReadFile(filepath.Join(release.dir, "vault-plugin-sigsci"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.data, loose) {
		t.Error("the binary in the tarball differs from vault-plugin-sigsci beside it")
	}
	checkStaticLinuxAMD64(t, e.data)
}

// checkStaticLinuxAMD64 fails unless bin is a linux/amd64 ELF executable with
// no dynamic loader (built with CGO disabled), so Vault can run it anywhere.
func checkStaticLinuxAMD64(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("not an ELF binary: %v", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("ELF class %v machine %v type %v, want a 64-bit x86-64 executable", f.Class, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary is dynamically linked (%v): CGO was not disabled", p.Type)
		}
	}
}

// TestDocumentedInstallCommandsGiveTheRegisteredChecksum runs the install
// commands exactly as the product documentation gives them.
func TestDocumentedInstallCommandsGiveTheRegisteredChecksum(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(release.dir, "vault-plugin-sigsci.tar.gz"), filepath.Join(dir, "vault-plugin-sigsci.tar.gz"))
	out := runOK(t, dir, "sh", "-c", `tar xzvf vault-plugin-sigsci.tar.gz && echo "$(sha256sum vault-plugin-sigsci|cut -c-64)"`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "vault-plugin-sigsci" {
		t.Fatalf("tar xzvf listed %q, want just vault-plugin-sigsci", lines[:len(lines)-1])
	}
	got := lines[1]
	sums := readSHA256SUMS(t)
	if got != sums["vault-plugin-sigsci"] {
		t.Errorf("sha256sum of the unpacked binary %s, SHA256SUMS says %s", got, sums["vault-plugin-sigsci"])
	}
	if len(got) != 64 {
		t.Errorf("checksum %q is not 64 hex digits", got)
	}
}

func TestSHA256SUMSCoversEveryArtifact(t *testing.T) {
	sums := readSHA256SUMS(t)
	want := []string{"vault-plugin-sigsci.tar.gz", "vault-plugin-sigsci", filepath.Base(release.deb), filepath.Base(release.rpm)}
	names := slices.Sorted(maps.Keys(sums))
	slices.Sort(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("SHA256SUMS lists %v, want %v", names, want)
	}
	for name, sum := range sums {
		data, err := os.ReadFile(filepath.Join(release.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		if got := hex.EncodeToString(h[:]); got != sum {
			t.Errorf("%s: sha256 %s, SHA256SUMS says %s", name, got, sum)
		}
	}
	// And the tool operators use agrees.
	runOK(t, release.dir, "sha256sum", "--check", "--strict", "SHA256SUMS")
}

func readSHA256SUMS(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(release.dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^([0-9a-f]{64}) [ *](\S+)$`)
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("SHA256SUMS line %q is not `<sha256>  <file>`", sc.Text())
		}
		if _, dup := sums[m[2]]; dup {
			t.Fatalf("SHA256SUMS lists %s twice", m[2])
		}
		sums[m[2]] = m[1]
	}
	return sums
}

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTarball(t *testing.T, path string) []tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not gzip: %v", path, err)
	}
	tr := tar.NewReader(zr)
	var entries []tarEntry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s in %s: %v", hdr.Name, path, err)
		}
		entries = append(entries, tarEntry{hdr: hdr, data: data})
	}
}

func entryNames(entries []tarEntry) []string {
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
	}
	return names
}

// runOK runs a command in dir ("" for the package directory) and returns its
// standard output; the test fails with the command's output when it fails.
func runOK(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	out, err := run(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// run runs a command and returns its standard output, or the error with
// standard error appended.
func run(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
