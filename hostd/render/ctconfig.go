package render

// This file builds consul-template's configuration: every field set, nothing
// read from the environment.

import (
	"os"
	"slices"
	"time"

	ctconfig "github.com/hashicorp/consul-template/config"

	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
)

// placeholderToken is what consul-template believes its token is. The proxy
// replaces it on every request; a non-empty value also stops consul-template
// from reading ~/.vault-token.
const placeholderToken = "hostd-vault-proxy-sets-the-token"

// deniedFunctions are the template functions that would reach Consul or
// Nomad, run a program or write a file: hostd templates read Vault only.
var deniedFunctions = []string{
	"datacenters", "exportedServices", "importedServices", "key", "keyExists",
	"keyOrDefault", "ls", "safeLs", "node", "nodes", "partitions", "peerings",
	"service", "connect", "services", "tree", "safeTree", "caRoots", "caLeaf",
	"nomadServices", "nomadService", "nomadVarList", "nomadVarListSafe",
	"nomadVar", "nomadVarExists", "plugin", "writeToFile",
}

// consulTemplateConfig sets every field that would otherwise come from the
// environment or a file, then finalizes.
func (r *Renderer) consulTemplateConfig() *ctconfig.Config {
	c := ctconfig.DefaultConfig()
	c.Vault = &ctconfig.VaultConfig{
		Address:               ctconfig.String(vaultproxy.Address),
		Enabled:               ctconfig.Bool(true),
		Namespace:             ctconfig.String(""), // the proxy sets it
		RenewToken:            ctconfig.Bool(false),
		Token:                 ctconfig.String(placeholderToken),
		UnwrapToken:           ctconfig.Bool(false),
		ClientUserAgent:       ctconfig.String("hostd"),
		DefaultLeaseDuration:  ctconfig.TimeDuration(r.opts.RefreshInterval),
		LeaseRenewalThreshold: ctconfig.Float64(ctconfig.DefaultLeaseRenewalThreshold),
		SSL:                   unusedSSL(), // the proxy speaks plain HTTP in-process; it holds the TLS settings
		Retry: &ctconfig.RetryConfig{
			Enabled:    ctconfig.Bool(true),
			Attempts:   ctconfig.Int(0), // keep retrying: the old files stay meanwhile
			Backoff:    ctconfig.TimeDuration(250 * time.Millisecond),
			MaxBackoff: ctconfig.TimeDuration(r.opts.MaxBackoff),
		},
		Transport:                  &ctconfig.TransportConfig{CustomDialer: r.opts.Dialer},
		K8SAuthRoleName:            ctconfig.String(""),
		K8SServiceAccountToken:     ctconfig.String(""),
		K8SServiceAccountTokenPath: ctconfig.String(""),
		K8SServiceMountPath:        ctconfig.String(""),
	}
	// Consul and Nomad are never used (their template functions are denied),
	// but consul-template builds both clients and logs its whole config at
	// debug level: fill every field it would read from the environment, so
	// no CONSUL_/NOMAD_ token ends up in that line.
	c.Consul = &ctconfig.ConsulConfig{
		Address: ctconfig.String(""), Namespace: ctconfig.String(""),
		Token: ctconfig.String(""), TokenFile: ctconfig.String(""),
		Auth:  &ctconfig.AuthConfig{Enabled: ctconfig.Bool(false), Username: ctconfig.String(""), Password: ctconfig.String("")},
		SSL:   unusedSSL(),
		Retry: &ctconfig.RetryConfig{Enabled: ctconfig.Bool(false)},
	}
	c.Nomad = &ctconfig.NomadConfig{
		Address: ctconfig.String(""), Enabled: ctconfig.Bool(false), Namespace: ctconfig.String(""),
		Token: ctconfig.String(""), AuthUsername: ctconfig.String(""), AuthPassword: ctconfig.String(""),
		SSL:   unusedSSL(),
		Retry: &ctconfig.RetryConfig{Enabled: ctconfig.Bool(false)},
	}
	c.Dedup = &ctconfig.DedupConfig{Enabled: ctconfig.Bool(false)}
	c.Wait = &ctconfig.WaitConfig{Enabled: ctconfig.Bool(false)}
	c.PidFile = ctconfig.String("")
	c.LogLevel = ctconfig.String("debug")
	c.TemplateErrFatal = ctconfig.Bool(false) // one bad template must not stop the others
	templates := make(ctconfig.TemplateConfigs, 0, len(r.templates))
	for _, t := range r.templates {
		templates = append(templates, &ctconfig.TemplateConfig{
			Contents:         ctconfig.String(t.Contents),
			Destination:      ctconfig.String(t.Destination),
			Perms:            ctconfig.FileMode(t.Perms),
			ErrMissingKey:    ctconfig.Bool(t.ErrorOnMissingKey),
			ErrFatal:         ctconfig.Bool(false),
			Backup:           ctconfig.Bool(false), // hostd/write keeps the backup
			CreateDestDirs:   ctconfig.Bool(false),
			Wait:             &ctconfig.WaitConfig{Enabled: ctconfig.Bool(false)},
			FunctionDenylist: slices.Clone(deniedFunctions),
			SandboxPath:      ctconfig.String(""),
		})
	}
	c.Templates = &templates
	c.RendererFunc = r.writeFile
	c.ReaderFunc = os.ReadFile
	c.Finalize()
	return c
}

// unusedSSL is an SSL config with TLS off and every field set, so nothing is
// read from VAULT_CACERT, CONSUL_CACERT and the like.
func unusedSSL() *ctconfig.SSLConfig {
	return &ctconfig.SSLConfig{
		Enabled: ctconfig.Bool(false), Verify: ctconfig.Bool(true),
		CaCert: ctconfig.String(""), CaCertBytes: ctconfig.String(""), CaPath: ctconfig.String(""),
		Cert: ctconfig.String(""), Key: ctconfig.String(""), ServerName: ctconfig.String(""),
	}
}
