package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	gplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/logical"
	vaultplugin "github.com/hashicorp/vault/sdk/plugin"

	"github.com/sigsci-keys/sigsci-keys/plugin/plugintest"
)

func TestRunPrintsVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-version"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "v0.1.0-dev\n" {
		t.Fatalf("-version printed %q, want the default v0.1.0-dev", out.String())
	}
}

func TestRunRefusesUnknownFlags(t *testing.T) {
	if err := run([]string{"-no-such-flag"}, &bytes.Buffer{}); err == nil {
		t.Fatal("an unknown flag was accepted")
	}
}

func TestServedVersionAlwaysSemver(t *testing.T) {
	for stamp, want := range map[string]string{
		"v1.2.3":          "v1.2.3",
		"0.4.0":           "0.4.0",
		"v0.1.0-dev":      "v0.1.0-dev",
		"v1.0.0-rc.1+abc": "v1.0.0-rc.1+abc",
		"67a1f79":         "v0.0.0-dev+67a1f79",
		"67a1f79-dirty":   "v0.0.0-dev+67a1f79-dirty",
		"v1":              "v0.0.0-dev+v1",
		"feature/x y":     "v0.0.0-dev+feature-x-y",
		"":                "v0.0.0-dev",
		"///":             "v0.0.0-dev",
	} {
		if got := servedVersion(stamp); got != want {
			t.Errorf("servedVersion(%q) = %q, want %q", stamp, got, want)
		}
	}
}

// The built binary, with its version set by -ldflags, serves the engine to a
// go-plugin client exactly as Vault starts it (handshake cookie, AutoMTLS,
// protocol v5, multiplexed).
func TestBinaryServesOverGoPluginWithBuildVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vault-plugin-sigsci")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=v9.8.7", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "v9.8.7" {
		t.Fatalf("%s -version: %q %v", bin, out, err)
	}

	// Vault starts a v5 plugin with AutoMTLS and says so in the environment.
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), pluginutil.PluginAutoMTLSEnv+"=true")
	client := gplugin.NewClient(&gplugin.ClientConfig{
		HandshakeConfig:  vaultplugin.HandshakeConfig,
		VersionedPlugins: map[int]gplugin.PluginSet{5: {vaultplugin.BackendPluginName: &vaultplugin.GRPCBackendPlugin{}}},
		Cmd:              cmd,
		AllowedProtocols: []gplugin.Protocol{gplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("plugin handshake: %v", err)
	}
	if v := client.NegotiatedVersion(); v != 5 {
		t.Fatalf("negotiated plugin protocol %d, want 5", v)
	}
	grpcClient := rpc.(*gplugin.GRPCClient)
	b, err := vaultplugin.Dispense(rpc, plugintest.MuxedClient(grpcClient, "mount-1"))
	if err != nil {
		t.Fatal(err)
	}
	storage := &logical.InmemStorage{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.Setup(ctx, &logical.BackendConfig{
		Logger:      hclog.NewNullLogger(),
		System:      &logical.StaticSystemView{},
		StorageView: storage,
	}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	if got := b.(logical.PluginVersioner).PluginVersion().Version; got != "v9.8.7" {
		t.Fatalf("running version %q, want the -ldflags version v9.8.7", got)
	}

	resp, err := b.HandleRequest(ctx, &logical.Request{
		Operation: logical.UpdateOperation, Path: "config", Storage: storage,
		Data: map[string]interface{}{"refresh_interval": "90s"},
	})
	if err != nil || resp.IsError() {
		t.Fatalf("write config: %v %v", err, resp)
	}
	resp, err = b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "config", Storage: storage})
	if err != nil || resp == nil || resp.Data["refresh_interval"] == nil {
		t.Fatalf("read config: %v %v", err, resp)
	}
	if got := fmt.Sprint(resp.Data["refresh_interval"]); got != "90" {
		t.Fatalf("refresh_interval = %v, want 90", got)
	}
	// The write reached Vault's side of the storage broker, not a copy
	// inside the plugin process.
	entry, err := storage.Get(ctx, "config")
	if err != nil || entry == nil || !strings.Contains(string(entry.Value), `"refresh_interval":90000000000`) {
		t.Fatalf("config in Vault's storage: %v %v", entry, err)
	}
	if os.Getenv("VAULT_BACKEND_PLUGIN") != "" {
		t.Fatal("test environment leaks the plugin cookie")
	}
}
