package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
)

// Scenario 4: hostd as the package installs it. The hostd .deb, built by
// the release tooling, is installed on this machine; hostd runs from
// /usr/bin/hostd under the package's own hostd.service (Type=notify,
// WatchdogSec, Restart=on-failure, User=hostd and the hardening), reads the
// package's hostd.hcl and agent.ctmpl as an operator edits them, writes
// /etc/sigsci/agent.conf, and restarts the agent over D-Bus as the package's
// polkit rule allows.
//
// What differs from a host whose PID 1 is systemd:
//
//   - The manager is a systemd user manager run by root in a private mount
//     namespace (hostd/systemdtest), started ForServiceUsers: its bus admits
//     every user as the system bus does, polkitd answers on that bus with
//     the machine's rules (so the installed 50-hostd.rules decides what user
//     hostd may do, as on a host), and its notify socket is open to user
//     hostd as /run/systemd/notify is.
//   - hostd.service is the package's file, linked into the manager, with one
//     drop-in (managerDropIn): systemdtest.RelaxedSandbox, the three
//     settings a user manager cannot set up here; the manager's bus as
//     hostd's system bus (DBUS_SYSTEM_BUS_ADDRESS); hostd's output in a file,
//     for want of journald.
//   - As in any user manager, StateDirectory= and RuntimeDirectory= lie
//     under the manager's directory, not /var/lib and /run, so hostd.hcl's
//     status socket moves there; the agent is the fake agent.
//   - dpkg runs in the manager's mount namespace with the system bus at the
//     manager's bus (Manager.SystemCommand), so the package's maintainer
//     scripts and the operator's `systemctl` (no --user) reach this manager.
//
// These stories change the machine: they install the hostd package and
// purge it after, so they stop at once where a hostd package, /etc/hostd,
// /etc/sigsci or /var/lib/hostd exists already.

// What the package installs, where the stories use it.
const (
	hostdUnit         = "hostd.service"
	packagedUnitFile  = "/usr/lib/systemd/system/hostd.service"
	packagedBinary    = "/usr/bin/hostd"
	packagedConfig    = "/etc/hostd/hostd.hcl"
	packagedAgentConf = "/etc/sigsci/agent.conf"
	packagedRoleID    = "/etc/hostd/role-id"
	packagedSecretID  = "/etc/hostd/secret-id"
)

// The two releases the stories install: the first, and its upgrade.
const (
	firstRelease = "1.0.0"
	nextRelease  = "1.1.0"
)

// packagedOptions choose how setUpPackagedHost configures hostd.
type packagedOptions struct {
	// debounce is restart.debounce: long enough here, a rendered change
	// waits for its restart (a restart owed) while the story acts.
	debounce time.Duration
	// frontEnd puts hostd.hcl's Vault address on a front end (h.front)
	// that the story can take down, rather than on Vault itself.
	frontEnd bool
}

// setUpPackagedHost installs the first release's package and configures the
// host as an operator does at first boot: hostd.hcl and the AppRole files
// in /etc/hostd, `hostd render` (as user hostd) writes agent.conf, and the
// agent starts on it. hostd.service is installed but not started: the story
// starts it (startHostdService).
func setUpPackagedHost(t *testing.T, opts packagedOptions) *host {
	t.Helper()
	requireMachineWithoutHostd(t)
	first, _ := hostdPackages(t)
	h := newHost(t, systemdtest.Start(t, systemdtest.ForServiceUsers()))
	h.agentConf = packagedAgentConf
	h.configPath = packagedConfig
	h.stateFile = filepath.Join(h.dir, "agent.state")
	h.socket = filepath.Join(h.manager.RuntimeDir(), "hostd", "hostd.sock")
	h.hostdLog = filepath.Join(h.manager.Dir(), "hostd.log")
	h.metricsAddr = harness.FreeLoopbackAddr(t)
	if opts.frontEnd {
		h.front = startFrontEnd(t, h.vault.Addr)
	}

	story := t // the package stays installed until the story ends
	harness.StepT(t, "the operator installs the hostd package", func(t *testing.T) {
		h.installPackage(t, story, first)
		if v := h.installedVersion(t); v != firstRelease+"-1" {
			t.Fatalf("installed hostd %s, want %s-1", v, firstRelease)
		}
	})
	h.installAgent(t)
	harness.StepT(t, "the operator configures hostd in /etc/hostd", func(t *testing.T) {
		if err := os.WriteFile(packagedConfig, []byte(packagedHostdConfig(t, h, opts)), 0o640); err != nil {
			t.Fatal(err)
		}
		for src, dst := range map[string]string{"role-id": packagedRoleID, "secret-id": packagedSecretID} {
			data, err := os.ReadFile(filepath.Join(h.dir, src))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o400); err != nil {
				t.Fatal(err)
			}
			runOK(t, "chown", "hostd:hostd", dst)
		}
		if out, err := exec.Command(packagedBinary, "validate", "-config", packagedConfig).CombinedOutput(); err != nil {
			t.Fatalf("hostd validate: %v\n%s", err, out)
		}
	})
	harness.StepT(t, "hostd.service comes from the package", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if err := h.manager.InstallDropIn(ctx, hostdUnit, "user-manager.conf", managerDropIn(h)); err != nil {
			t.Fatal(err)
		}
		if err := h.manager.LinkUnit(ctx, packagedUnitFile); err != nil {
			t.Fatal(err)
		}
	})
	harness.StepT(t, "hostd render writes agent.conf and the agent starts on it", func(t *testing.T) {
		cmd := exec.CommandContext(t.Context(), "setpriv", "--reuid=hostd", "--regid=hostd", "--init-groups", "--",
			packagedBinary, "render", "-config", packagedConfig)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hostd render as user hostd: %v\n%s", err, out)
		}
		h.systemctl(t, "start", agentUnit)
		waitFor(t, "the agent to run on the primary pair", agentRunsOn(h.stateFile, primary(t, h.sim).AccessKey))
	})
	return h
}

// packagedHostdConfig is the package's hostd.hcl with this host's values:
// Vault's address, a faster refresh, the restart timing of opts, the
// metrics port, and the status socket in hostd's runtime directory. The
// template, the AppRole files, agent.conf and the system bus stay as
// shipped.
func packagedHostdConfig(t *testing.T, h *host, opts packagedOptions) string {
	t.Helper()
	config := readFile(packagedConfig)
	vaultAddr := h.vault.Addr
	if h.front != nil {
		vaultAddr = h.front.URL()
	}
	for _, r := range [][2]string{
		{`"https://vault.example.com:8200"`, strconv.Quote(vaultAddr)},
		{`refresh_interval = "30s"`, `refresh_interval = "5s"`},
		{`splay = "30s"`, `splay = "0s"` + "\n  debounce = " + strconv.Quote(opts.debounce.String())},
		{`"127.0.0.1:9464"`, strconv.Quote(h.metricsAddr)},
		{`"/run/hostd/hostd.sock"`, strconv.Quote(h.socket)},
	} {
		if !strings.Contains(config, r[0]) {
			t.Fatalf("the packaged %s no longer holds %s, which this story replaces:\n%s", packagedConfig, r[0], config)
		}
		config = strings.Replace(config, r[0], r[1], 1)
	}
	return config
}

// managerDropIn is all this manager adds to the packaged hostd.service.
func managerDropIn(h *host) string {
	return systemdtest.RelaxedSandbox +
		"Environment=DBUS_SYSTEM_BUS_ADDRESS=" + h.manager.BusAddress() + "\n" +
		"StandardOutput=append:" + h.hostdLog + "\n"
}

// startHostdService is the operator's `systemctl start hostd`; it returns
// how long systemctl took, which for Type=notify is until hostd said
// READY=1. When the story ends, hostd's log is kept for the secrets sweep
// and shown if the story failed.
func (h *host) startHostdService(t *testing.T, story *testing.T) time.Duration {
	t.Helper()
	story.Cleanup(func() {
		if story.Failed() {
			story.Logf("hostd log:\n%s", readFile(h.hostdLog))
		}
		harness.KeepFile(story, "hostd's log of "+story.Name(), h.hostdLog)
	})
	start := time.Now()
	h.systemctl(t, "start", hostdUnit)
	took := time.Since(start)
	h.checkRunsAsHostd(t)
	return took
}

// checkRunsAsHostd checks that hostd.service's main process runs as user
// hostd, so what it may do with systemd is what polkit lets that user do.
func (h *host) checkRunsAsHostd(t *testing.T) {
	t.Helper()
	hostd, err := user.Lookup("hostd")
	if err != nil {
		t.Fatal(err)
	}
	pid := h.propsOf(t, hostdUnit).MainPID
	data, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatalf("hostd's main process %s: %v", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if ids, ok := strings.CutPrefix(line, "Uid:"); ok {
			for _, id := range strings.Fields(ids) {
				if id != hostd.Uid {
					t.Fatalf("hostd runs with uids %v, want user hostd (%s) throughout", strings.Fields(ids), hostd.Uid)
				}
			}
			return
		}
	}
	t.Fatalf("no Uid line for hostd's main process %s", pid)
}

// systemctl runs an operator's systemctl command (no --user), which reaches
// the host's manager as it would reach PID 1, and returns its output.
func (h *host) systemctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.manager.SystemCommand(t.Context(), "systemctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// installPackage installs deb with dpkg, whose maintainer scripts reach the
// host's manager, and purges the package again when story ends.
func (h *host) installPackage(t, story *testing.T, deb string) {
	t.Helper()
	_, err := user.Lookup("hostd")
	userExisted := err == nil
	manager := h.manager
	story.Cleanup(func() {
		t := story
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// What hostd and the story wrote, which dpkg does not own.
		for _, path := range []string{packagedRoleID, packagedSecretID} {
			_ = os.Remove(path)
		}
		if entries, err := os.ReadDir("/etc/sigsci"); err == nil {
			for _, e := range entries {
				_ = os.RemoveAll(filepath.Join("/etc/sigsci", e.Name()))
			}
		}
		// The package's prerm stops hostd.service through the manager.
		if out, err := manager.SystemCommand(ctx, "dpkg", "--purge", "hostd").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge hostd: %v\n%s", err, out)
		}
		for _, dir := range []string{"/etc/hostd", "/etc/sigsci", "/var/lib/hostd"} {
			if _, err := os.Lstat(dir); err == nil {
				t.Errorf("cleanup: %s is still there after dpkg --purge hostd; removing it", dir)
				_ = os.RemoveAll(dir)
			}
		}
		if !userExisted {
			// The package keeps its user on purge; the story leaves the
			// machine as it found it.
			_ = exec.Command("userdel", "hostd").Run()
			_ = exec.Command("groupdel", "hostd").Run()
		}
	})
	h.dpkgInstall(t, deb)
}

// dpkgInstall is `dpkg --install deb` as the operator runs it on the host.
func (h *host) dpkgInstall(t *testing.T, deb string) string {
	t.Helper()
	out, err := h.manager.SystemCommand(t.Context(), "dpkg", "--install", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg --install %s: %v\n%s", filepath.Base(deb), err, out)
	}
	return string(out)
}

func (h *host) installedVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--show", "--showformat=${Version}", "hostd").Output()
	if err != nil {
		t.Fatalf("dpkg-query hostd: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// requireMachineWithoutHostd stops the story where it cannot run (not root,
// no dpkg: skipped, or failed under CI) or where it would change a hostd
// the machine has already (failed).
func requireMachineWithoutHostd(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		harness.Unavailable(t, "installing the hostd package needs root")
	}
	for _, tool := range []string{"dpkg", "dpkg-query", "nsenter", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			harness.Unavailable(t, "installing the hostd package needs %s: %v", tool, err)
		}
	}
	out, err := exec.Command("dpkg-query", "--show", "--showformat=${db:Status-Status}", "hostd").Output()
	if state := strings.TrimSpace(string(out)); err == nil && state != "not-installed" {
		t.Fatalf("a hostd package is on this machine already (%s): this story installs and purges its own; remove it first with dpkg --purge hostd", state)
	}
	for _, dir := range []string{"/etc/hostd", "/etc/sigsci", "/var/lib/hostd"} {
		if _, err := os.Lstat(dir); err == nil {
			t.Fatalf("%s exists already: this story installs and purges the hostd package and would change it", dir)
		}
	}
}

// releases are the two packages, built once per run into programs.Bin.
var releases struct {
	once        sync.Once
	first, next string
	err         error
}

// hostdPackages returns the .deb of the first release and of the next.
func hostdPackages(t *testing.T) (first, next string) {
	t.Helper()
	programs.Require(t)
	releases.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		releases.first, releases.err = buildPackage(ctx, firstRelease)
		if releases.err == nil {
			releases.next, releases.err = buildPackage(ctx, nextRelease)
		}
	})
	if releases.err != nil {
		t.Fatalf("building the hostd packages: %v", releases.err)
	}
	return releases.first, releases.next
}

// buildPackage builds hostd's .deb of version as `make release` does: hostd
// for linux/amd64 with the version stamped, packaged by packaging/nfpm from
// packaging/nfpm.yaml (the .rpm and the plugin, which a release also
// builds, are left out).
func buildPackage(ctx context.Context, version string) (string, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(programs.Bin, "packages", version)
	bin := filepath.Join(dir, "hostd")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, "./cmd/hostd")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build hostd %s: %w\n%s", version, err, out)
	}
	pack := exec.CommandContext(ctx, "go", "run", "./nfpm", "-config", "nfpm.yaml", "-target", dir, "-version", version, "-packagers", "deb")
	pack.Dir = filepath.Join(root, "packaging")
	pack.Env = append(os.Environ(), "HOSTD_BIN="+bin)
	if out, err := pack.CombinedOutput(); err != nil {
		return "", fmt.Errorf("packaging hostd %s: %w\n%s", version, err, out)
	}
	debs, err := filepath.Glob(filepath.Join(dir, "hostd_*_amd64.deb"))
	if err != nil || len(debs) != 1 {
		return "", errors.Join(fmt.Errorf("want one hostd .deb in %s, found %v", dir, debs), err)
	}
	return debs[0], nil
}

func runOK(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
