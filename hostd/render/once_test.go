package render

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
)

func unreachableVault(t *testing.T) *vaultproxy.Proxy {
	t.Helper()
	p, err := vaultproxy.New(vaultproxy.Options{Upstream: "http://127.0.0.1:1", Tokens: fixedToken("")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestOnceWritesWhatRendersAndNamesWhatFails: one template renders and is
// written with its mode; one cannot be written (its directory is missing)
// and one can never render; Once returns with an outcome for each, in the
// configured order, and an error naming both failures.
func TestOnceWritesWhatRendersAndNamesWhatFails(t *testing.T) {
	dir := t.TempDir()
	good := Template{Contents: "listen = {{ \"127.0.0.1\" }}\n", Destination: filepath.Join(dir, "good.conf"), Perms: 0o640, Unit: "u.service"}
	unwritable := Template{Contents: "x\n", Destination: filepath.Join(dir, "missing", "unwritable.conf")}
	denied := Template{Contents: `{{ key "consul/thing" }}`, Destination: filepath.Join(dir, "denied.conf")}
	c := newChanges()
	events := eventtest.New[event.Event]()
	r, err := New(Options{
		Templates: []Template{good, unwritable, denied}, Dialer: unreachableVault(t), RefreshInterval: refresh,
		OnChange: c.onChange, Reporting: stage.Reporting{Sink: events},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	outcomes, err := r.Once(ctx)
	if ctx.Err() != nil {
		t.Fatal("Once waited for the timeout although every template had its result")
	}
	if err == nil || !strings.Contains(err.Error(), "template "+unwritable.Destination+": ") || !strings.Contains(err.Error(), "template "+denied.Destination+": ") {
		t.Fatalf("error = %v; want both failing templates named", err)
	}
	if strings.Contains(err.Error(), good.Destination) {
		t.Errorf("the good template is named as failing: %v", err)
	}
	if len(outcomes) != 3 || outcomes[0].Destination != good.Destination || outcomes[1].Destination != unwritable.Destination || outcomes[2].Destination != denied.Destination {
		t.Fatalf("outcomes %+v, want one per template in order", outcomes)
	}
	if o := outcomes[0]; !o.Written || !o.Changed || o.Err != "" {
		t.Errorf("good: %+v", o)
	}
	for _, o := range outcomes[1:] {
		if o.Written || o.Err == "" {
			t.Errorf("%s: %+v, want not written and why", o.Destination, o)
		}
	}
	if got := hosttest.ReadFile(t, good.Destination); got != "listen = 127.0.0.1\n" {
		t.Errorf("good.conf holds %q", got)
	}
	if info, err := os.Stat(good.Destination); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("good.conf: %v, %v; want mode 0640", info, err)
	}
	if _, err := os.Lstat(denied.Destination); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("denied.conf exists: %v", err)
	}
	c.none(t) // a one-shot restarts nothing

	// A second run finds the file up to date.
	outcomes, _ = r.Once(ctx)
	if o := outcomes[0]; !o.Written || o.Changed {
		t.Errorf("second run, good: %+v; want written and unchanged", o)
	}
}

// TestOnceGivesUpWhenCtxEndsAndSaysOnWhat: a secret that cannot be read is
// retried until ctx ends; the outcome names the secret it waited for.
func TestOnceGivesUpWhenCtxEndsAndSaysOnWhat(t *testing.T) {
	dir := t.TempDir()
	tpl := Template{Contents: `{{ with secret "secret/data/agent" }}{{ .Data.data.key }}{{ end }}`, Destination: filepath.Join(dir, "agent.conf")}
	r, err := New(Options{Templates: []Template{tpl}, Dialer: unreachableVault(t), RefreshInterval: refresh})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	outcomes, err := r.Once(ctx)
	if err == nil || len(outcomes) != 1 || outcomes[0].Written {
		t.Fatalf("outcomes %+v, err %v; want the template not written", outcomes, err)
	}
	msg := outcomes[0].Err
	for _, want := range []string{"not rendered", "vault.read(secret/data/agent)", "gave up waiting"} {
		if !strings.Contains(msg, want) {
			t.Errorf("outcome %q lacks %q", msg, want)
		}
	}
	if _, err := os.Lstat(tpl.Destination); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("agent.conf exists: %v", err)
	}
}

// TestOnceNamesTheVaultErrorOfASecretItCannotRead: with a real Vault, the
// template whose secret the policy denies is reported with Vault's answer
// once ctx ends; the other template is written meanwhile.
func TestOnceNamesTheVaultErrorOfASecretItCannotRead(t *testing.T) {
	s := newStack(t)
	s.writeSecret(t, "agent", "AKIA-ONE")
	s.vault.Mount("forbidden", "kv", nil)
	s.vault.Write("forbidden/agent", map[string]any{"key": "SECRET-NOT-FOR-HOSTD"})
	good := keyTemplate(s.dir, "agent", "")
	denied := Template{Contents: `{{ with secret "forbidden/agent" }}{{ .Data.key }}{{ end }}`, Destination: filepath.Join(s.dir, "denied.conf")}
	r, err := New(Options{Templates: []Template{good, denied}, Dialer: s.proxy, RefreshInterval: s.interval, Reporting: stage.Reporting{Sink: s.events}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	outcomes, err := r.Once(ctx)
	if err == nil || len(outcomes) != 2 {
		t.Fatalf("outcomes %+v, err %v", outcomes, err)
	}
	if !outcomes[0].Written || hosttest.ReadFile(t, good.Destination) != `access_key = "AKIA-ONE"`+"\n" {
		t.Errorf("the readable template was not written: %+v", outcomes[0])
	}
	msg := outcomes[1].Err
	for _, want := range []string{"vault.read(forbidden/agent)", "vault answered 403: 1 error occurred: permission denied"} {
		if !strings.Contains(msg, want) {
			t.Errorf("outcome %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "URL:") || strings.ContainsAny(msg, "\n\t*") {
		t.Errorf("outcome %q is not one line of what Vault answered", msg)
	}
	if !strings.Contains(err.Error(), "template "+denied.Destination+": not rendered") {
		t.Errorf("error %v does not name the denied template", err)
	}
}
