package plugin

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestBackendStorageIsSealWrappedAndWALIsLocal(t *testing.T) {
	b := newBackend("v0.1.0", newSigsciClient)
	special := b.SpecialPaths()
	for _, prefix := range []string{"role/", "creds/"} {
		if !slices.Contains(special.SealWrapStorage, prefix) {
			t.Errorf("%s is not seal-wrapped: %v", prefix, special.SealWrapStorage)
		}
	}
	if !slices.Contains(special.LocalStorage, framework.WALPrefix) {
		t.Errorf("the WAL is not local storage: %v", special.LocalStorage)
	}
}

func TestBackendEveryPathHasHelpAndEveryWriteIsForwarded(t *testing.T) {
	b := newBackend("v0.1.0", newSigsciClient)
	if len(b.Paths) != 11 {
		t.Fatalf("%d paths, want 11 (config, role list, role, creds all, creds site, rotate, rotate for a role, fleet all, fleet site, fleet hosts, fleet host)", len(b.Paths))
	}
	for _, p := range b.Paths {
		if p.HelpSynopsis == "" || p.HelpDescription == "" {
			t.Errorf("path %s lacks help", p.Pattern)
		}
		for op, h := range p.Operations {
			po, ok := h.(*framework.PathOperation)
			if !ok {
				t.Fatalf("path %s: unexpected handler type %T", p.Pattern, h)
			}
			write := op == logical.CreateOperation || op == logical.UpdateOperation || op == logical.DeleteOperation
			if write && (!po.ForwardPerformanceStandby || !po.ForwardPerformanceSecondary) {
				t.Errorf("path %s: %s is not forwarded to the active node / primary", p.Pattern, op)
			}
		}
		for name, f := range p.Fields {
			if f.Description == "" {
				t.Errorf("path %s: field %s has no description", p.Pattern, name)
			}
		}
	}
}

// runFactory makes the engine the way Vault does: the factory NewFactory
// returns for version, run with conf.
func runFactory(t *testing.T, version string, conf *logical.BackendConfig) (logical.Backend, error) {
	t.Helper()
	factory, err := NewFactory(version)
	if err != nil {
		t.Fatalf("NewFactory(%q): %v", version, err)
	}
	return factory(context.Background(), conf)
}

func TestNewFactoryVersion(t *testing.T) {
	for _, v := range []string{"v0.1.0", "v0.1.0-dev", "1.2.3"} {
		b, err := runFactory(t, v, logical.TestBackendConfig())
		if err != nil {
			t.Fatal(err)
		}
		if got := b.(logical.PluginVersioner).PluginVersion().Version; got != v {
			t.Fatalf("running version %q, want %q", got, v)
		}
	}
	for _, v := range []string{"", "dev", "v1", "latest"} {
		if _, err := NewFactory(v); err == nil {
			t.Fatalf("NewFactory(%q) accepted a version that is not semver", v)
		}
	}
}

// Vault runs the factory without usable storage when the plugin is
// registered: the factory must not touch it.
func TestNewFactoryTouchesNoStorage(t *testing.T) {
	conf := logical.TestBackendConfig()
	conf.StorageView = failingStorage{}
	b, err := runFactory(t, "v0.1.0", conf)
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	b.Cleanup(context.Background())
}

type failingStorage struct{}

var errNoStorage = errors.New("no storage during factory")

func (failingStorage) List(context.Context, string) ([]string, error) { return nil, errNoStorage }
func (failingStorage) Get(context.Context, string) (*logical.StorageEntry, error) {
	return nil, errNoStorage
}
func (failingStorage) Put(context.Context, *logical.StorageEntry) error { return errNoStorage }
func (failingStorage) Delete(context.Context, string) error             { return errNoStorage }

func TestBackendInvalidateDropsTheRoleClient(t *testing.T) {
	e := newStoredSite(t)
	if cached := e.b.hasClient("vault-user"); !cached {
		t.Fatal("no client cached after a copy")
	}
	e.b.InvalidateKey(context.Background(), "creds/vault-user/www")
	if cached := e.b.hasClient("vault-user"); !cached {
		t.Fatal("an unrelated key dropped the client")
	}
	e.b.InvalidateKey(context.Background(), "role/vault-user")
	if cached := e.b.hasClient("vault-user"); cached {
		t.Fatal("invalidating the role kept its client")
	}
}

func TestBackendCleanStopsStartupRecoveryAndKeepsTheWAL(t *testing.T) {
	e := newTestEnv(t)
	rotationInterrupted(t, e)
	e.assertCleanStops("start-up recovery", func() error {
		return e.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage})
	})
	select {
	case <-e.b.recovered:
	default:
		t.Fatal("recovery goroutine still running after Clean")
	}
	if e.walCount() != 1 {
		t.Fatal("stopping recovery must keep the WAL entry for later")
	}
}

func TestBackendInitializeTwiceStartsOneRecovery(t *testing.T) {
	e := newTestEnv(t)
	req := &logical.InitializationRequest{Storage: e.storage}
	for range 2 {
		if err := e.b.Initialize(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-e.b.recovered:
	case <-time.After(10 * time.Second):
		t.Fatal("recovery with an empty WAL did not finish")
	}
}

func (b *backend) hasClient(name string) bool {
	b.clientsMu.Lock()
	defer b.clientsMu.Unlock()
	_, ok := b.clients[name]
	return ok
}

// "vault path-help" and the OpenAPI document are generated from the paths;
// both must work for every path.
func TestBackendPathHelpAndOpenAPI(t *testing.T) {
	e := newTestEnv(t)
	for _, path := range []string{"", "config", "role/", "role/vault-user", "creds/vault-user/sites", "creds/vault-user/sites/www", "rotate/sites/www",
		"rotate/vault-user/sites/www", "fleet/vault-user/sites/", "fleet/vault-user/sites/www", "fleet/vault-user/sites/www/hosts/",
		"fleet/vault-user/sites/www/hosts/web-1"} {
		resp := e.ok(logical.HelpOperation, path, nil)
		help, _ := resp.Data["help"].(string)
		if help == "" {
			t.Fatalf("path-help %q is empty", path)
		}
		if _, ok := resp.Data["openapi"]; !ok {
			t.Fatalf("path-help %q has no OpenAPI document", path)
		}
	}
	doc, ok := e.ok(logical.HelpOperation, "", nil).Data["openapi"].(*framework.OASDocument)
	if !ok {
		t.Fatal("root help carries no OpenAPI document")
	}
	for _, want := range []string{"/config", "/role", "/role/", "/role/{name}", "/creds/{role}/sites",
		"/creds/{role}/sites/", "/creds/{role}/sites/{site}", "/rotate/sites/{site}", "/rotate/{role}/sites/{site}",
		"/fleet/{role}/sites", "/fleet/{role}/sites/{site}", "/fleet/{role}/sites/{site}/hosts/", "/fleet/{role}/sites/{site}/hosts/{host}"} {
		if _, ok := doc.Paths[want]; !ok {
			t.Errorf("OpenAPI document lacks %s", want)
		}
	}
}
