package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// converter turns the raw file into a Config, filling defaults and adding a
// diagnostic for every problem it finds instead of stopping at the first.
type converter struct {
	diags hcl.Diagnostics
	file  hcl.Range // the start of the file, for problems with no better place
}

func newConverter(diags hcl.Diagnostics) *converter {
	return &converter{diags: diags}
}

func (c *converter) config(raw *rawFile) *Config {
	c.file = raw.fileRange
	cfg := &Config{}
	cfg.Vault = c.vault(only(c, raw.Vault, "vault", func(b *rawVault) hcl.Range { return b.DefRange }))
	cfg.AutoAuth = c.autoAuth(only(c, raw.AutoAuth, "auto_auth", func(b *rawAutoAuth) hcl.Range { return b.DefRange }), cfg.Vault)
	cfg.TemplateConfig = c.templateConfig(only(c, raw.TemplateConfig, "template_config", func(b *rawTemplateConfig) hcl.Range { return b.DefRange }))
	cfg.Templates = c.templates(raw.Templates)
	cfg.Restart = c.restart(only(c, raw.Restart, "restart", func(b *rawRestart) hcl.Range { return b.DefRange }))
	cfg.Telemetry = c.telemetry(only(c, raw.Telemetry, "telemetry", func(b *rawTelemetry) hcl.Range { return b.DefRange }))
	cfg.Status = c.status(only(c, raw.Status, "status", func(b *rawStatus) hcl.Range { return b.DefRange }))
	cfg.Log = c.log(only(c, raw.Log, "log", func(b *rawLog) hcl.Range { return b.DefRange }))
	cfg.Report = c.report(only(c, raw.Report, "report", func(b *rawReport) hcl.Range { return b.DefRange }))
	return cfg
}

// only returns the first of blocks that may appear once, reporting any
// repeat; nil when there is none.
func only[B any](c *converter, blocks []*B, name string, defRange func(*B) hcl.Range) *B {
	if len(blocks) == 0 {
		return nil
	}
	first := defRange(blocks[0]).Start.Line
	for _, b := range blocks[1:] {
		c.errorf(defRange(b), "Duplicate "+name+" block", "only one %s block is allowed; the first is at line %d", name, first)
	}
	return blocks[0]
}

func (c *converter) vault(r *rawVault) Vault {
	if r == nil {
		c.errorf(c.file, "Missing vault block", `hostd needs a vault block with the address of the Vault server, such as vault { address = "https://vault.example:8200" }`)
		return Vault{}
	}
	v := Vault{
		Address:       r.Address,
		CACert:        r.CACert,
		CAPath:        r.CAPath,
		ClientCert:    r.ClientCert,
		ClientKey:     r.ClientKey,
		TLSServerName: r.TLSServerName,
		Namespace:     r.Namespace,
		TLSSkipVerify: r.TLSSkipVerify,
	}
	if c.required(r.AddressRange, r.DefRange, "vault", "address") {
		c.vaultAddress(r.Address, r.AddressRange)
	}
	c.optionalPath(r.CACert, r.CACertRange, "ca_cert")
	c.optionalPath(r.CAPath, r.CAPathRange, "ca_path")
	c.optionalPath(r.ClientCert, r.ClientCertRange, "client_cert")
	c.optionalPath(r.ClientKey, r.ClientKeyRange, "client_key")
	switch {
	case set(r.ClientCertRange) && !set(r.ClientKeyRange):
		c.errorf(r.ClientCertRange, "Missing client_key", "client_cert is set but client_key is not; a client certificate needs its key")
	case set(r.ClientKeyRange) && !set(r.ClientCertRange):
		c.errorf(r.ClientKeyRange, "Missing client_cert", "client_key is set but client_cert is not; a client key needs its certificate")
	}
	if r.TLSSkipVerify {
		c.warnf(r.TLSSkipVerifyRange, "TLS verification is off", "tls_skip_verify = true lets anyone between this host and Vault read the token and the agent keys; set ca_cert instead")
	}
	return v
}

func (c *converter) vaultAddress(addr string, rng hcl.Range) {
	u, err := parseVaultURL(addr)
	if err != nil {
		c.errorf(rng, "Invalid vault address", `address must be an absolute http:// or https:// URL such as "https://vault.example:8200", got %q: %v`, redactURL(addr), err)
		return
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		c.warnf(rng, "Vault address without TLS", "with http:// the Vault token and the agent keys cross the network unencrypted")
	}
}

func (c *converter) templateConfig(r *rawTemplateConfig) TemplateConfig {
	if r == nil {
		r = &rawTemplateConfig{}
	}
	return TemplateConfig{
		RefreshInterval: c.duration(r.RefreshInterval, r.RefreshIntervalRange, "refresh_interval", render.DefaultRefreshInterval, 5*time.Second, 24*time.Hour),
		MaxBackoff:      c.duration(r.MaxBackoff, r.MaxBackoffRange, "max_backoff", render.DefaultMaxBackoff, time.Second, time.Hour),
	}
}

func (c *converter) templates(raws []*rawTemplate) []Template {
	if len(raws) == 0 {
		c.warnf(c.file, "No template blocks", "hostd will only keep a Vault token alive; add a template block to render the agent's configuration")
		return nil
	}
	out := make([]Template, 0, len(raws))
	destinations := map[string]hcl.Range{}
	for _, r := range raws {
		t := c.template(r)
		if t.Destination != "" {
			key := filepath.Clean(t.Destination)
			if first, dup := destinations[key]; dup {
				c.errorf(r.DestinationRange, "Duplicate destination", "%s is already written by the template at line %d; each file must have one template", t.Destination, first.Start.Line)
			} else {
				destinations[key] = r.DestinationRange
			}
		}
		out = append(out, t)
	}
	return out
}

func (c *converter) template(r *rawTemplate) Template {
	t := Template{
		Source:            r.Source,
		Contents:          r.Contents,
		User:              r.User,
		Group:             r.Group,
		ErrorOnMissingKey: boolOr(r.ErrorOnMissingKey, true),
		Backup:            boolOr(r.Backup, true),
	}
	t.Contents = c.templateInput(r)
	if c.required(r.DestinationRange, r.DefRange, "template", "destination") && c.absPath(r.Destination, r.DestinationRange, "destination") {
		if strings.HasSuffix(r.Destination, "/") {
			c.errorf(r.DestinationRange, "Invalid destination", "destination must be a file, not a directory, got %q", r.Destination)
		} else {
			t.Destination = r.Destination
		}
	}
	t.Perms = c.mode(r.Perms, r.PermsRange, "perms", write.DefaultPerms)
	if t.Perms&0o002 != 0 {
		c.errorf(r.PermsRange, "World-writable template", "perms %#o would let any user change the rendered file; use 0600 or 0640", t.Perms)
	} else if t.Perms&0o004 != 0 {
		c.warnf(r.PermsRange, "World-readable template", "perms %#o let every user on the host read the rendered secrets; 0600 or 0640 is safer", t.Perms)
	}
	c.accountName(r.User, r.UserRange, "user")
	c.accountName(r.Group, r.GroupRange, "group")
	if c.usable(r.UnitRange) && c.unitName(r.Unit, r.UnitRange) {
		t.Unit = r.Unit
	}
	if !t.Backup && t.Unit != "" {
		c.warnf(r.BackupRange, "No backup on disk", "with backup = false no copy of the previous file is kept: a restart of %s owed across a reload or a restart of hostd cannot be rolled back, and there is no file to recover by hand", t.Unit)
	}
	return t
}

// templateInput checks that exactly one of source and contents is given and
// returns the template text: the contents, or the source file read now, once
// (what is checked is then what is rendered).
func (c *converter) templateInput(r *rawTemplate) string {
	hasSource, hasContents := set(r.SourceRange), set(r.ContentsRange)
	switch {
	case hasSource && hasContents:
		c.errorf(r.ContentsRange, "Both source and contents", "a template takes either source (a file) or contents (inline text), not both")
	case !hasSource && !hasContents:
		c.errorf(r.DefRange, "Missing template input", "a template needs source (a template file) or contents (inline template text)")
	case hasContents:
		if c.usable(r.ContentsRange) && r.Contents == "" {
			c.errorf(r.ContentsRange, "Empty contents", "contents is empty; hostd would write an empty file")
		}
	case hasSource:
		if c.usable(r.SourceRange) && c.absPath(r.Source, r.SourceRange, "source") {
			text, err := readTemplateSource(r.Source)
			if err != nil {
				c.errorf(r.SourceRange, "Unreadable template source", "%v", err)
			}
			return text
		}
	}
	return r.Contents
}

func (c *converter) telemetry(r *rawTelemetry) Telemetry {
	if r == nil || !c.usable(r.ListenAddressRange) {
		return Telemetry{ListenAddress: DefaultListenAddress}
	}
	if r.ListenAddress == "" {
		return Telemetry{} // disabled on purpose
	}
	if err := checkListenAddress(r.ListenAddress); err != nil {
		c.errorf(r.ListenAddressRange, "Invalid listen_address", `listen_address must be host:port such as "127.0.0.1:9464", or "" to turn metrics off, got %q: %v`, r.ListenAddress, err)
		return Telemetry{ListenAddress: DefaultListenAddress}
	}
	return Telemetry{ListenAddress: r.ListenAddress}
}

func (c *converter) status(r *rawStatus) Status {
	if r == nil {
		r = &rawStatus{}
	}
	s := Status{SocketPath: DefaultSocketPath}
	if c.usable(r.SocketPathRange) && c.absPath(r.SocketPath, r.SocketPathRange, "socket_path") {
		if n := len(r.SocketPath); n > maxSocketPath {
			c.errorf(r.SocketPathRange, "Socket path too long", "socket_path is %d bytes; a unix socket path can have at most %d", n, maxSocketPath)
		} else {
			s.SocketPath = r.SocketPath
		}
	}
	s.SocketMode = c.mode(r.SocketMode, r.SocketModeRange, "socket_mode", DefaultSocketMode)
	if s.SocketMode&0o002 != 0 {
		c.warnf(r.SocketModeRange, "World-writable status socket", "socket_mode %#o lets every user on the host query hostd's status", s.SocketMode)
	}
	return s
}

func (c *converter) log(r *rawLog) Log {
	if r == nil {
		r = &rawLog{}
	}
	return Log{
		Level:  c.oneOf(r.Level, r.LevelRange, "level", DefaultLogLevel, "debug", "info", "warn", "error"),
		Format: c.oneOf(r.Format, r.FormatRange, "format", DefaultLogFormat, "text", "json"),
	}
}

// --- small checks shared by the blocks above -----------------------------

// required reports whether a required attribute was written and decoded; when
// it was not written it adds a problem pointing at its block.
func (c *converter) required(attr, block hcl.Range, blockName, attrName string) bool {
	if !set(attr) {
		c.errorf(block, "Missing "+attrName, "the %s block needs %s", blockName, attrName)
		return false
	}
	return !c.failed(attr)
}

// usable reports whether an optional attribute was written and its value
// decoded, so it is worth checking.
func (c *converter) usable(attr hcl.Range) bool {
	return set(attr) && !c.failed(attr)
}

func (c *converter) optionalPath(value string, rng hcl.Range, name string) {
	if c.usable(rng) {
		c.absPath(value, rng, name)
	}
}

func (c *converter) absPath(value string, rng hcl.Range, name string) bool {
	if !filepath.IsAbs(value) {
		c.errorf(rng, "Path not absolute", "%s must be an absolute path such as /etc/hostd/..., got %q", name, value)
		return false
	}
	return true
}

func (c *converter) duration(value string, rng hcl.Range, name string, def, lo, hi time.Duration) time.Duration {
	if !c.usable(rng) {
		return def
	}
	d, err := time.ParseDuration(value)
	switch {
	case err != nil:
		c.errorf(rng, "Invalid duration", `%s must be a duration such as "30s", "5m" or "1h", got %q`, name, value)
	case d < lo && lo == 0:
		c.errorf(rng, "Negative duration", "%s must not be negative, got %s", name, value)
	case d < lo:
		c.errorf(rng, "Duration too short", "%s must be at least %s, got %s", name, shortDuration(lo), value)
	case d > hi:
		c.errorf(rng, "Duration too long", "%s must be at most %s, got %s", name, shortDuration(hi), value)
	default:
		return d
	}
	return def
}

func (c *converter) mode(value string, rng hcl.Range, name string, def os.FileMode) os.FileMode {
	if !c.usable(rng) {
		return def
	}
	m, err := parseMode(value)
	if err != nil {
		c.errorf(rng, "Invalid file mode", `%s must be an octal mode from "0000" to "0777" such as "0600", got %q`, name, value)
		return def
	}
	return m
}

// oneOf returns value if it is one of allowed, def if it was not written.
func (c *converter) oneOf(value string, rng hcl.Range, name, def string, allowed ...string) string {
	if !c.usable(rng) {
		return def
	}
	for _, a := range allowed {
		if value == a {
			return value
		}
	}
	c.errorf(rng, "Invalid "+name, "%s must be one of %s, got %q", name, quoteList(allowed), value)
	return def
}

func (c *converter) accountName(value string, rng hcl.Range, name string) {
	if c.usable(rng) && (value == "" || strings.ContainsAny(value, " \t\n:/")) {
		c.errorf(rng, "Invalid "+name, "%s must be a user or group name or a numeric id, got %q", name, value)
	}
}

func (c *converter) unitName(value string, rng hcl.Range) bool {
	if err := checkUnitName(value); err != nil {
		c.errorf(rng, "Invalid unit", `unit must be a systemd unit name with its type, such as "sigsci-agent.service", got %q: %v`, value, err)
		return false
	}
	return true
}

// failed reports whether an error was already reported inside rng (a value
// of the wrong type, say), so the same attribute is not blamed twice.
func (c *converter) failed(rng hcl.Range) bool {
	for _, d := range c.diags {
		if d.Severity == hcl.DiagError && d.Subject != nil && rng.Overlaps(*d.Subject) {
			return true
		}
	}
	return false
}

func (c *converter) errorf(rng hcl.Range, summary, format string, args ...any) {
	c.add(hcl.DiagError, rng, summary, format, args...)
}

func (c *converter) warnf(rng hcl.Range, summary, format string, args ...any) {
	c.add(hcl.DiagWarning, rng, summary, format, args...)
}

func (c *converter) add(sev hcl.DiagnosticSeverity, rng hcl.Range, summary, format string, args ...any) {
	r := rng
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: sev,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}
