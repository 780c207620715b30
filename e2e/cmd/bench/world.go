package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

const (
	corpName  = "bench-corp"
	userEmail = "vault@bench-corp.example"
	siteName  = "www" // the site templates/agent.ctmpl reads
	roleName  = "vault-user"
	apiToken  = "bench-api-token-not-a-secret"
)

// world is one trial's Signal Sciences simulator and Vault, set up the same
// way for every tool: the plugin registered and mounted as documented, a role,
// the site copied, and an AppRole whose role-id and secret-id files are in
// hostDir.
type world struct {
	sim      *harness.Simulator
	vault    *harness.Vault
	opsDir   string // the operator's working directory
	hostDir  string // role-id and secret-id, as approle-example.sh writes them
	auditLog string
}

func newWorld(t testing.TB, programs *harness.Programs, root string, mountRefresh time.Duration) *world {
	t.Helper()
	w := &world{
		sim: harness.StartSimulator(t, sigscisim.Seed{Corps: []sigscisim.CorpSeed{{
			Name:  corpName,
			Users: []sigscisim.UserSeed{{Email: userEmail, Token: apiToken}},
			Sites: []sigscisim.SiteSeed{{Name: siteName, DisplayName: "WWW"}},
		}}}),
		vault:  harness.StartVault(t, programs),
		opsDir: t.TempDir(),
	}
	w.hostDir = filepath.Join(w.opsDir, "host")
	w.auditLog = filepath.Join(w.opsDir, "audit.log")
	if err := os.WriteFile(filepath.Join(w.opsDir, "token.txt"), []byte(apiToken), 0o600); err != nil {
		t.Fatal(err)
	}
	w.vault.Shell(t, w.opsDir, "vault audit enable file file_path="+w.auditLog).OK(t)
	mountPlugin(t, w.vault, programs)
	w.sh(t, "vault write sigsci/config refresh_interval="+mountRefresh.String())
	w.sh(t, "vault write /sigsci/role/"+roleName+" corp="+corpName+" email="+userEmail+" api_url="+w.sim.APIURL+" token=@token.txt")
	w.sh(t, "vault write -f /sigsci/creds/"+roleName+"/sites/"+siteName)
	w.sh(t, "SITE="+siteName+" OUT=host "+filepath.Join(root, "packaging", "vault", "approle-example.sh"))
	return w
}

// sh runs an operator's command in the operator's directory; it must succeed.
// newHost is a host of this world with its files in dir: it logs in with
// the world's AppRole files and renders the repository's agent template to
// dir/agent.conf, reading secrets again every refresh; its tool logs to
// logName in the operator's directory.
func (w *world) newHost(dir, root string, refresh time.Duration, logName string) host {
	return host{
		vaultAddr:    w.vault.Addr,
		dir:          dir,
		roleIDFile:   filepath.Join(w.hostDir, "role-id"),
		secretIDFile: filepath.Join(w.hostDir, "secret-id"),
		template:     filepath.Join(root, "templates", "agent.ctmpl"),
		destination:  filepath.Join(dir, "agent.conf"),
		refresh:      refresh,
		logPath:      filepath.Join(w.opsDir, logName),
	}
}

func (w *world) sh(t testing.TB, script string) string {
	t.Helper()
	return w.vault.Shell(t, w.opsDir, script).OK(t)
}

// primary returns the site's primary key set at the API.
func (w *world) primary(t testing.TB) sigsci.KeySet {
	t.Helper()
	return w.sim.Primary(t, corpName, siteName)
}

// rotate rotates the site's keys the documented way and returns the new
// primary set once the command has returned.
func (w *world) rotate(t testing.TB) sigsci.KeySet {
	t.Helper()
	before := w.primary(t)
	w.sh(t, "vault write -f sigsci/rotate/sites/"+siteName)
	after := w.primary(t)
	if after.AccessKey == before.AccessKey {
		t.Fatalf("the rotation left the primary access key %s in place", before.AccessKey)
	}
	return after
}

// retire deletes the site's non-primary key sets at once, as soon as the
// bench has seen the new pair in the file: sooner than hostd's report of it
// reaches Vault, and sooner than retire_min_overlap for Vault Agent, which
// cannot report, so it overrides the guard. The fleet trial (fleet.go)
// measures the guarded retirement.
func (w *world) retire(t testing.TB) {
	t.Helper()
	w.sh(t, "vault delete sigsci/rotate/sites/"+siteName+" force=true")
}
