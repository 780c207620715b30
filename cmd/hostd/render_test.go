package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

// TestRenderOnce runs `hostd render` against a real Vault: it logs in with
// approle, writes every template with its mode, restarts nothing and exits
// 0; a template that fails makes it exit 1 naming that template, with the
// secret in the error scrubbed, while the other template is still written
// and the failing one's destination is never created.
func TestRenderOnce(t *testing.T) {
	vault := vaulttest.Start(t)
	vault.Mount("kv", "kv", nil)
	vault.Write("kv/agent", map[string]any{"accessKey": "A1", "secretKey": "S-one-SECRET"})
	vault.WritePolicy("agent", `path "kv/agent" { capabilities = ["read"] }`)
	role := vault.EnableAppRole("approle", "waf", map[string]any{"token_policies": "agent", "token_ttl": "1h"})

	dir := t.TempDir()
	secretID := filepath.Join(dir, "secret-id")
	for name, content := range map[string]string{"role-id": role.RoleID, "secret-id": vault.NewSecretID(role)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	agent, extra, broken := filepath.Join(dir, "agent.conf"), filepath.Join(dir, "extra.conf"), filepath.Join(dir, "broken.conf")
	configText := func(second hosttest.Template) string {
		return hosttest.Config{
			VaultAddress: vault.Addr,
			AppRole:      &hosttest.AppRole{RoleIDFile: filepath.Join(dir, "role-id"), SecretIDFile: secretID, RemoveSecretIDFile: true},
			Templates: []hosttest.Template{
				{Contents: hosttest.AgentTemplate, Destination: agent, Perms: "0640", Unit: "sigsci-agent.service"},
				second,
			},
			Socket: filepath.Join(dir, "hostd.sock"),
		}.Text()
	}
	path := writeConfig(t, dir, configText(hosttest.Template{Contents: `{{ with secret "kv/agent" }}{{ .Data.accessKey }}{{ end }}`, Destination: extra}))

	code, out, errOut := execute("render", "-config", path, "-timeout", "30s")
	if code != 0 {
		t.Fatalf("render: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{agent + "\tchanged", extra + "\tchanged", "no unit was restarted"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	assertFile(t, agent, "accesskeyid=A1\nsecretaccesskey=S-one-SECRET\n", 0o640)
	assertFile(t, extra, "A1", 0o600)
	if _, err := os.Stat(secretID); err != nil {
		t.Errorf("the secret-id file must stay for the daemon that starts next: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "hostd.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a one-shot render must not open the status socket: %v", err)
	}

	code, out, errOut = execute("render", "-config", path, "-timeout", "30s")
	if code != 0 || !strings.Contains(out, agent+"\tunchanged") {
		t.Errorf("second render: exit %d\n%s%s", code, out, errOut)
	}

	// A rotation, and a template whose error would quote the secret key.
	vault.Write("kv/agent", map[string]any{"accessKey": "A2", "secretKey": "S-two-SECRET"})
	path = writeConfig(t, dir, configText(hosttest.Template{Contents: `{{ with secret "kv/agent" }}{{ parseInt .Data.secretKey }}{{ end }}`, Destination: broken}))
	code, out, errOut = execute("render", "-config", path, "-timeout", "30s")
	if code != 1 {
		t.Fatalf("render with a failing template: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, broken+"\tfailed: ") || !strings.Contains(out, "parseInt") {
		t.Errorf("stdout must name the failing template and why:\n%s", out)
	}
	if !strings.Contains(errOut, "1 of 2 template(s) not written") {
		t.Errorf("stderr lacks the summary:\n%s", errOut)
	}
	if strings.Contains(out+errOut, "S-two-SECRET") || strings.Contains(out+errOut, "S-one-SECRET") {
		t.Errorf("a secret key reached the output:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	// Templates are independent, as in the daemon: the good one is written.
	assertFile(t, agent, "accesskeyid=A2\nsecretaccesskey=S-two-SECRET\n", 0o640)
	if _, err := os.Lstat(broken); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failing template's destination exists: %v", err)
	}
	assertNoTemporaryFiles(t, dir)
}

// TestRenderGivesUpWithoutVault: with Vault unreachable, `hostd render`
// exits 1 at its timeout and says the login failed, writing nothing.
func TestRenderGivesUpWithoutVault(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "agent.conf")
	path := writeConfig(t, dir, validConfig(dir)+fmt.Sprintf("template {\n  contents = %q\n  destination = %q\n}\n", hosttest.AgentTemplate, dest))
	code, out, errOut := execute("render", "-config", path, "-timeout", "1s")
	if code != 1 || !strings.Contains(errOut, "not logged in to Vault with token_file auth (-timeout 1s passed)") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s written without Vault: %v", dest, err)
	}

	if code, _, errOut := execute("render", "-config", filepath.Join(dir, "absent.hcl")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

func assertFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || string(got) != content {
		t.Errorf("%s = %q, %v; want %q", path, got, err, content)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != mode {
		t.Errorf("%s: %v, %v; want mode %#o", path, info, err, mode)
	}
}

func assertNoTemporaryFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}
