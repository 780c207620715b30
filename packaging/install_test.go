package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
)

// requireRoot skips a test that changes the machine when not root, and
// fails it instead under CI, which runs as root and must run every test.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test installs a package and needs root; CI runs as root")
	}
	t.Skip("skipping: installing the package needs root (CI runs it as root)")
}

// TestDebInstall installs the released .deb on this machine the way an
// operator does, checks what it put where, upgrades it over an edited
// configuration and purges it again.
func TestDebInstall(t *testing.T) {
	requireRoot(t)
	if out, err := run("", "dpkg-query", "--show", "--showformat=${db:Status-Status}", "hostd"); err == nil && strings.TrimSpace(out) != "not-installed" {
		t.Fatalf("a hostd package is already on this machine (%s): this test installs and purges its own; remove it first with dpkg --purge hostd", strings.TrimSpace(out))
	}
	for _, dir := range []string{"/etc/hostd", "/etc/sigsci", "/var/lib/hostd"} {
		if _, err := os.Lstat(dir); err == nil {
			t.Fatalf("%s already exists: this test installs and purges the hostd package and would change it", dir)
		}
	}
	_, userErr := user.Lookup("hostd")
	userExisted := userErr == nil
	t.Cleanup(func() {
		if out, err := run("", "dpkg", "--purge", "hostd"); err != nil {
			t.Errorf("cleanup: dpkg --purge hostd: %v\n%s", err, out)
		}
		if !userExisted {
			// The package keeps its user on purge (files may still belong to
			// it); the test leaves the machine as it found it.
			_, _ = run("", "userdel", "hostd")
			_, _ = run("", "groupdel", "hostd")
		}
	})

	out := runOK(t, "", "dpkg", "--install", release.deb)
	if !strings.Contains(out, "hostd is installed but not enabled") {
		t.Errorf("first install did not print the next steps:\n%s", out)
	}

	t.Run("service user", checkServiceUser)
	t.Run("files in place", func(t *testing.T) { checkInstalledFiles(t, "") })
	t.Run("binary runs", checkInstalledBinary)
	t.Run("unit verifies", checkUnitVerifies)
	t.Run("unit settings", checkUnitSettings)
	t.Run("hostd user permissions", checkHostdUserPermissions)
	t.Run("polkit allows restarting only the agent", checkPolkitRule)
	t.Run("hostd runs under the unit's sandbox", checkServiceRunsUnderItsSandbox)
	t.Run("upgrade keeps an edited config", checkUpgradeKeepsEditedConfig)
	t.Run("purge removes everything", checkPurge)
}

func checkServiceUser(t *testing.T) {
	fields := strings.Split(strings.TrimSpace(runOK(t, "", "getent", "passwd", "hostd")), ":")
	if len(fields) != 7 {
		t.Fatalf("getent passwd hostd: %v", fields)
	}
	uid, _ := strconv.Atoi(fields[2])
	if uid == 0 || uid >= 1000 {
		t.Errorf("hostd has uid %d, want a system uid (1..999)", uid)
	}
	if fields[5] != "/var/lib/hostd" {
		t.Errorf("hostd's home is %s, want /var/lib/hostd", fields[5])
	}
	if !strings.HasSuffix(fields[6], "nologin") {
		t.Errorf("hostd's shell is %s, want nologin", fields[6])
	}
	group, err := user.LookupGroup("hostd")
	if err != nil {
		t.Fatal(err)
	}
	if group.Gid != fields[3] {
		t.Errorf("hostd's primary group is %s, want hostd (%s)", fields[3], group.Gid)
	}
}

// checkInstalledFiles checks every packaged path's mode and owner, and that
// the files are the repository's, except the one config file edited on this
// host (if any).
func checkInstalledFiles(t *testing.T, edited string) {
	for _, p := range packaged {
		info, err := os.Lstat(p.path)
		if err != nil {
			t.Errorf("%s: %v", p.path, err)
			continue
		}
		st := info.Sys().(*syscall.Stat_t)
		owner, group := nameOfUID(st.Uid), nameOfGID(st.Gid)
		if info.Mode() != p.mode || owner != p.owner || group != p.group {
			t.Errorf("%s: %v %s:%s, want %v %s:%s", p.path, info.Mode(), owner, group, p.mode, p.owner, p.group)
		}
	}
	for dst, src := range sources {
		if dst == edited {
			continue
		}
		installed, err := os.ReadFile(dst)
		if err != nil {
			t.Error(err)
			continue
		}
		want, err := os.ReadFile(filepath.FromSlash(src))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(installed, want) {
			t.Errorf("%s differs from %s in the repository", dst, src)
		}
	}
	// dpkg's own record of every file's checksum agrees with the disk.
	out, err := run("", "dpkg", "--verify", "hostd")
	if err != nil {
		t.Errorf("dpkg --verify hostd: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !(edited != "" && strings.HasSuffix(line, " c "+edited)) {
			t.Errorf("dpkg --verify hostd: %s", line)
		}
	}
}

func checkInstalledBinary(t *testing.T) {
	bin, err := os.ReadFile("/usr/bin/hostd")
	if err != nil {
		t.Fatal(err)
	}
	checkStaticLinuxAMD64(t, bin)
	out := runOK(t, "", "/usr/bin/hostd", "version")
	if !strings.Contains(out, release.version) {
		t.Errorf("hostd version says %q, want it to name %s", strings.TrimSpace(out), release.version)
	}
}

func checkUnitVerifies(t *testing.T) {
	const unit = "/usr/lib/systemd/system/hostd.service"
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", unit).CombinedOutput()
	if err != nil || strings.Contains(string(out), "hostd") {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
	// An exposure score of 2.0 or less is what systemd calls "OK".
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security rates the unit above 2.0: %v\n%s", err, out)
	}
}

func checkUnitSettings(t *testing.T) {
	unit := parseUnit(t, "/usr/lib/systemd/system/hostd.service")
	service := unit["Service"]
	want := map[string]string{
		"Type":             "notify",
		"Restart":          "on-failure",
		"User":             "hostd",
		"Group":            "hostd",
		"ProtectSystem":    "strict",
		"ProtectHome":      "yes",
		"PrivateTmp":       "yes",
		"NoNewPrivileges":  "yes",
		"StateDirectory":   "hostd",
		"RuntimeDirectory": "hostd",
		"ExecStart":        "/usr/bin/hostd run -config /etc/hostd/hostd.hcl",
		"ReadWritePaths":   "/etc/hostd -/etc/sigsci",
	}
	for key, value := range want {
		if got := strings.Join(service[key], " "); got != value {
			t.Errorf("[Service] %s=%q, want %q", key, got, value)
		}
	}
	if w := strings.Join(service["WatchdogSec"], ""); w == "" || w == "0" || w == "infinity" {
		t.Errorf("[Service] WatchdogSec=%q, want a watchdog interval", w)
	}
	if got := strings.Join(unit["Install"]["WantedBy"], " "); got != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%q, want multi-user.target", got)
	}
}

// parseUnit reads a unit file into section → key → values, in order.
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			unit[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: unexpected line %q", path, line)
			}
			unit[section][key] = append(unit[section][key], value)
		}
	}
	return unit
}

// checkHostdUserPermissions checks, as the hostd user itself, that the
// modes let it do its job and no more.
func checkHostdUserPermissions(t *testing.T) {
	asUser := func(user, group string, args ...string) (string, error) {
		return run("", "setpriv", append([]string{"--reuid=" + user, "--regid=" + group, "--init-groups", "--"}, args...)...)
	}
	if out, err := asUser("hostd", "hostd", "/usr/bin/hostd", "validate", "-config", "/etc/hostd/hostd.hcl"); err != nil {
		t.Errorf("as hostd: hostd validate of the example config: %v\n%s", err, out)
	}
	if out, err := asUser("hostd", "hostd", "sh", "-c", "touch /etc/sigsci/agent.conf.probe && rm /etc/sigsci/agent.conf.probe"); err != nil {
		t.Errorf("as hostd: cannot write in /etc/sigsci, where agent.conf goes: %v\n%s", err, out)
	}
	if out, err := asUser("hostd", "hostd", "sh", "-c", "touch /var/lib/hostd/probe && rm /var/lib/hostd/probe"); err != nil {
		t.Errorf("as hostd: cannot write in its state directory: %v\n%s", err, out)
	}
	if _, err := asUser("hostd", "hostd", "sh", "-c", "echo >> /etc/hostd/hostd.hcl"); err == nil {
		t.Error("as hostd: could change its own configuration; it must only read it")
	}
	if _, err := asUser("nobody", "nogroup", "cat", "/etc/hostd/hostd.hcl"); err == nil {
		t.Error("as nobody: could read /etc/hostd/hostd.hcl; only root and group hostd may")
	}
}

// polkitScript starts a private system bus and the real polkitd in a
// private mount namespace (run it under `unshare -m`), then asks polkit, for
// each "user:group unit verb" argument, whether a process of that user may
// manage that unit with that verb, as systemd asks when hostd calls
// TryRestartUnit or RestartUnit. It prints "RESULT user unit verb
// pkcheck-exit-code".
const polkitScript = `
set -eu
log=$1; shift
mount -t tmpfs tmpfs /run/dbus
subject= polkitd= bus=
trap 'kill $subject $polkitd $bus 2>/dev/null || true' EXIT
dbus-daemon --system --nofork --nopidfile >>"$log" 2>&1 &
bus=$!
waitfor() { # waitfor WHAT COMMAND...: poll with a 10 s deadline
	what=$1; shift; n=0
	until "$@" >/dev/null 2>&1; do
		n=$((n+1)); [ $n -le 200 ] || { echo "$what did not come up" >&2; exit 1; }
		sleep 0.05
	done
}
waitfor "the system bus" test -S /run/dbus/system_bus_socket
/usr/lib/polkit-1/polkitd --no-debug >>"$log" 2>&1 &
polkitd=$!
waitfor "polkitd" busctl --system status org.freedesktop.PolicyKit1
fifodir=$(mktemp -d); chmod 0711 "$fifodir"
fifo=$fifodir/ready; mkfifo -m 0622 "$fifo"
for check in "$@"; do
	set -- $check; who=$1; unit=$2; verb=$3
	setpriv --reuid="${who%%:*}" --regid="${who#*:}" --clear-groups sh -c 'echo ready >"$0"; exec sleep 300' "$fifo" &
	subject=$!
	timeout 10 cat "$fifo" >/dev/null   # the subject now runs as that user
	rc=0
	pkcheck --action-id org.freedesktop.systemd1.manage-units --process "$subject" \
		--detail unit "$unit" --detail verb "$verb" >>"$log" 2>&1 || rc=$?
	kill "$subject"; wait "$subject" 2>/dev/null || true; subject=
	echo "RESULT ${who%%:*} $unit $verb $rc"
done
rm -rf "$fifodir"
`

// checkPolkitRule asks the real polkitd, with the installed rule, what the
// hostd user (and others) may do with systemd units.
func checkPolkitRule(t *testing.T) {
	for _, tool := range []string{"unshare", "dbus-daemon", "/usr/lib/polkit-1/polkitd", "pkcheck", "busctl", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to check the polkit rule: %v", tool, err)
		}
	}
	checks := []struct {
		who, unit, verb string
		allowed         bool
	}{
		{"hostd:hostd", "sigsci-agent.service", "try-restart", true}, // after a change
		{"hostd:hostd", "sigsci-agent.service", "restart", true},     // a rollback of a failed agent
		{"hostd:hostd", "sigsci-agent.service", "stop", false},
		{"hostd:hostd", "sigsci-agent.service", "start", false},
		{"hostd:hostd", "sigsci-agent.service", "reload", false},
		{"hostd:hostd", "sigsci-agent.service", "reload-or-try-restart", false},
		{"hostd:hostd", "ssh.service", "try-restart", false},
		{"hostd:hostd", "ssh.service", "restart", false},
		{"hostd:hostd", "hostd.service", "restart", false},
		{"nobody:nogroup", "sigsci-agent.service", "try-restart", false},
		{"nobody:nogroup", "sigsci-agent.service", "restart", false},
	}
	args := []string{"-m", "sh", "-c", polkitScript, "polkit-check", filepath.Join(t.TempDir(), "polkit.log")}
	for _, c := range checks {
		args = append(args, c.who+" "+c.unit+" "+c.verb)
	}
	if err := os.MkdirAll("/run/dbus", 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", args...).CombinedOutput()
	logData, _ := os.ReadFile(args[5])
	if err != nil {
		t.Fatalf("polkit check: %v\n%s\npolkitd log:\n%s", err, out, logData)
	}
	results := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		var who, unit, verb string
		var rc int
		if n, _ := fmt.Sscanf(line, "RESULT %s %s %s %d", &who, &unit, &verb, &rc); n == 4 {
			results[who+" "+unit+" "+verb] = rc
		}
	}
	for _, c := range checks {
		key := strings.SplitN(c.who, ":", 2)[0] + " " + c.unit + " " + c.verb
		rc, ok := results[key]
		switch {
		case !ok:
			t.Errorf("%s: no answer from polkit\n%s\n%s", key, out, logData)
		case c.allowed && rc != 0:
			t.Errorf("%s: polkit says no (pkcheck exit %d), want yes\n%s", key, rc, logData)
		case !c.allowed && rc == 0:
			t.Errorf("%s: polkit says yes, want no", key)
		case !c.allowed && rc != 1 && rc != 2:
			// 1 = not authorized, 2 = needs authentication (nobody to give it);
			// anything else is polkit failing, which proves nothing.
			t.Errorf("%s: pkcheck exit %d, want a refusal (1 or 2)\n%s", key, rc, logData)
		}
	}
}

// checkUpgradeKeepsEditedConfig installs a newer package over the first one
// after the operator edited hostd.hcl.
func checkUpgradeKeepsEditedConfig(t *testing.T) {
	const config = "/etc/hostd/hostd.hcl"
	edited := hosttest.ReadFile(t, config) + "\n# edited on this host\n"
	if err := os.WriteFile(config, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	const newVersion = "9999.0.0"
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./nfpm", "-config", "nfpm.yaml", "-target", dir, "-version", newVersion, "-packagers", "deb")
	cmd.Env = append(os.Environ(), "HOSTD_BIN=/usr/bin/hostd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the newer package: %v\n%s", err, out)
	}
	newer, err := onlyMatch(dir, "hostd_*_amd64.deb")
	if err != nil {
		t.Fatal(err)
	}
	out := runOK(t, "", "dpkg", "--install", newer)
	if strings.Contains(out, "installed but not enabled") {
		t.Errorf("an upgrade printed the first-install steps:\n%s", out)
	}
	if got := strings.TrimSpace(runOK(t, "", "dpkg-query", "--show", "--showformat=${Version}", "hostd")); got != newVersion+"-1" {
		t.Errorf("installed version %s after the upgrade, want %s-1", got, newVersion)
	}
	if got := hosttest.ReadFile(t, config); got != edited {
		t.Errorf("the upgrade replaced the edited %s:\n%s", config, got)
	}
	for _, leftover := range []string{config + ".dpkg-new", config + ".dpkg-dist"} {
		if _, err := os.Stat(leftover); err == nil {
			t.Errorf("%s exists: the upgrade did not treat the unchanged shipped config as unchanged", leftover)
		}
	}
	checkInstalledFiles(t, config)
}

func checkPurge(t *testing.T) {
	runOK(t, "", "dpkg", "--purge", "hostd")
	for _, p := range packaged {
		if _, err := os.Lstat(p.path); err == nil {
			t.Errorf("%s is still there after purge", p.path)
		} else if !os.IsNotExist(err) {
			t.Error(err)
		}
	}
	if _, err := user.Lookup("hostd"); err != nil {
		t.Errorf("purge removed the hostd user (files may still belong to it): %v", err)
	}
}

func nameOfUID(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

func nameOfGID(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		return g.Name
	}
	return strconv.Itoa(int(gid))
}
