// Command vault-plugin-sigsci serves the sigsci secrets engine to Vault over
// go-plugin (multiplexed: one process serves every mount). It wires flags and
// the TLS provider and does nothing else; the engine lives in package plugin.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	vaultplugin "github.com/hashicorp/vault/sdk/plugin"

	"github.com/sigsci-keys/sigsci-keys/plugin"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3". It
// should be semver: Vault compares it with the version given at registration
// and refuses a self-reported version that is not semver. A stamp that is not
// (a bare commit id from git describe) is carried as build metadata of
// v0.0.0-dev, see servedVersion.
var version = "v0.1.0-dev"

// devVersion is the version served when the build stamp is not semver.
const devVersion = "v0.0.0-dev"

var notBuildMetadata = regexp.MustCompile(`[^0-9A-Za-z-]+`)

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
	served := servedVersion(version)
	if *showVersion {
		_, err := fmt.Fprintln(stdout, served)
		return err
	}
	if served != version {
		hclog.New(&hclog.LoggerOptions{Name: "vault-plugin-sigsci"}).Warn(
			"build version is not semver; serving a dev version that carries it", "stamp", version, "version", served)
	}

	factory, err := plugin.NewFactory(served)
	if err != nil {
		return err
	}
	tlsProvider := api.VaultPluginTLSProvider(meta.GetTLSConfig())
	return vaultplugin.ServeMultiplex(&vaultplugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    tlsProvider,
	})
}

// servedVersion returns the stamp if it is semver, else devVersion with the
// stamp as build metadata (v0.0.0-dev+67a1f79-dirty), so that a development
// build still registers with Vault.
func servedVersion(stamp string) string {
	if _, err := plugin.NewFactory(stamp); err == nil {
		return stamp
	}
	meta := strings.Trim(notBuildMetadata.ReplaceAllString(stamp, "-"), "-")
	if meta == "" {
		return devVersion
	}
	candidate := devVersion + "+" + meta
	if _, err := plugin.NewFactory(candidate); err != nil {
		return devVersion
	}
	return candidate
}
