package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	gplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/vault/sdk/logical"
	vaultplugin "github.com/hashicorp/vault/sdk/plugin"

	"github.com/sigsci-keys/sigsci-keys/plugin/plugintest"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// The engine served over the real plugin wire (go-plugin gRPC, in process),
// multiplexed the way Vault runs it: one plugin server, one backend per mount.
func TestWireMultiplexedMountsOverGRPC(t *testing.T) {
	sim := sigscisim.New(testSeed())
	srv := newHTTPServer(t, sim)

	factory, err := NewFactory("v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	pluginMap := map[string]gplugin.Plugin{
		vaultplugin.BackendPluginName: &vaultplugin.GRPCBackendPlugin{
			Factory:             factory,
			MultiplexingSupport: true,
			Logger:              hclog.NewNullLogger(),
		},
	}
	conn, _ := gplugin.TestPluginGRPCConn(t, false, pluginMap)
	t.Cleanup(func() { _ = conn.Close() })

	storageA, storageB := &logical.InmemStorage{}, &logical.InmemStorage{}
	mountA := dispenseMount(t, conn, "mount-a", storageA)
	mountB := dispenseMount(t, conn, "mount-b", storageB)

	if got := mountA.(logical.PluginVersioner).PluginVersion().Version; got != "v1.2.3" {
		t.Fatalf("version over the wire: %q", got)
	}
	if paths := mountA.SpecialPaths(); !slices.Contains(paths.SealWrapStorage, "creds/") {
		t.Fatalf("special paths over the wire: %+v", paths)
	}
	if err := mountA.Initialize(context.Background(), &logical.InitializationRequest{Storage: storageA}); err != nil {
		t.Fatalf("initialize over the wire: %v", err)
	}

	call := func(b logical.Backend, s logical.Storage, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
		t.Helper()
		return b.HandleRequest(context.Background(), &logical.Request{
			Operation: op, Path: path, Data: data, Storage: s, MountPoint: "sigsci/",
		})
	}
	resp, err := call(mountA, storageA, logical.UpdateOperation, "role/vault-user", map[string]interface{}{
		"corp": "acme", "email": acmeEmail, "token": acmeToken, "api_url": srv.URL + sigscisim.APIPrefix,
	})
	if err != nil || resp.IsError() {
		t.Fatalf("write role over the wire: %v %v", err, resp)
	}
	if resp, err := call(mountA, storageA, logical.UpdateOperation, "creds/vault-user/sites/www", nil); err != nil || resp.IsError() {
		t.Fatalf("copy over the wire: %v %v", err, resp)
	}
	resp, err = call(mountA, storageA, logical.ReadOperation, "creds/vault-user/sites/www", nil)
	if err != nil || resp.IsError() {
		t.Fatalf("read over the wire: %v %v", err, resp)
	}
	live := sim.KeySets("acme", "www")
	if resp.Data["accessKey"] != live[0].AccessKey || resp.Data["secretKey"] != live[0].SecretKey {
		t.Fatalf("keys over the wire differ from the API: %v", resp.Data["accessKey"])
	}
	// Numbers cross the wire as numbers (whole, positive), which
	// consul-template needs once Vault encodes them as JSON.
	for _, k := range []string{"ttl", "rotation_period"} {
		raw, err := json.Marshal(resp.Data[k])
		if err != nil || !regexp.MustCompile(`^[1-9][0-9]*$`).Match(raw) {
			t.Fatalf("%s over the wire is %T %s, want a positive whole JSON number", k, resp.Data[k], raw)
		}
	}

	// Mount B is a different backend with its own storage: no shared state.
	_, err = call(mountB, storageB, logical.ReadOperation, "role/vault-user", nil)
	if coded, ok := err.(logical.HTTPCodedError); !ok || coded.Code() != http.StatusNotFound {
		t.Fatalf("mount B sees mount A's role, or the 404 was lost on the wire: %v", err)
	}

	// Cleanup reaches the backend (stops its background work) over the wire.
	done := make(chan struct{})
	go func() {
		mountA.(*vaultplugin.BackendPluginClientV5).Backend.Cleanup(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("cleanup over the wire hung")
	}
	if _, err := call(mountB, storageB, logical.ListOperation, "role/", nil); err != nil {
		t.Fatalf("mount B after mount A's cleanup: %v", err)
	}
}

// dispenseMount sets up one mount's backend over a shared plugin connection,
// tagging every call with the mount's multiplexing id as Vault does.
func dispenseMount(t *testing.T, conn *gplugin.GRPCClient, id string, storage logical.Storage) logical.Backend {
	t.Helper()
	b, err := vaultplugin.Dispense(conn, plugintest.MuxedClient(conn, id))
	if err != nil {
		t.Fatalf("dispense %s: %v", id, err)
	}
	err = b.Setup(context.Background(), &logical.BackendConfig{
		Logger:      hclog.NewNullLogger(),
		System:      &logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: time.Hour},
		StorageView: storage,
	})
	if err != nil {
		t.Fatalf("setup %s: %v", id, err)
	}
	return b
}
