// Command vault-plugin-sigsci serves the sigsci secrets engine to Vault over
// go-plugin (multiplexed: one process serves every mount). It wires flags and
// the TLS provider and does nothing else; the engine lives in package plugin.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	vaultplugin "github.com/hashicorp/vault/sdk/plugin"

	"github.com/sigsci-keys/sigsci-keys/plugin"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3". It
// must be semver: Vault compares it with the version given at registration.
var version = "v0.1.0-dev"

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		hclog.New(&hclog.LoggerOptions{Name: "vault-plugin-sigsci"}).Error("plugin exited", "error", err)
		os.Exit(1)
	}
}

// run parses the flags Vault passes to plugins and serves the engine until
// Vault stops the plugin. With -version it prints the version and returns.
func run(args []string, stdout io.Writer) error {
	meta := &api.PluginAPIClientMeta{}
	flags := meta.FlagSet()
	flags.SetOutput(io.Discard)
	showVersion := flags.Bool("version", false, "print the plugin version and exit")
	if err := flags.Parse(args); err != nil {
		if err == flag.ErrHelp {
			flags.SetOutput(stdout)
			flags.PrintDefaults()
			return nil
		}
		return fmt.Errorf("parsing flags: %w", err)
	}
	if *showVersion {
		_, err := fmt.Fprintln(stdout, version)
		return err
	}

	factory, err := plugin.NewFactory(version)
	if err != nil {
		return err
	}
	tlsProvider := api.VaultPluginTLSProvider(meta.GetTLSConfig())
	return vaultplugin.ServeMultiplex(&vaultplugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    tlsProvider,
	})
}
