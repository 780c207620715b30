package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/durationtext"
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
	var v Vault
	if c.required(r.Address, &v.Address, r.DefRange, "vault", "address") {
		c.vaultAddress(v.Address, r.Address.Range)
	}
	v.CACert = c.optionalPath(r.CACert)
	v.CAPath = c.optionalPath(r.CAPath)
	v.ClientCert = c.optionalPath(r.ClientCert)
	v.ClientKey = c.optionalPath(r.ClientKey)
	switch {
	case r.ClientCert != nil && r.ClientKey == nil:
		c.errorf(r.ClientCert.Range, "Missing client_key", "client_cert is set but client_key is not; a client certificate needs its key")
	case r.ClientKey != nil && r.ClientCert == nil:
		c.errorf(r.ClientKey.Range, "Missing client_cert", "client_key is set but client_cert is not; a client key needs its certificate")
	}
	v.TLSServerName = c.asWritten(r.TLSServerName)
	v.Namespace = c.asWritten(r.Namespace)
	if v.TLSSkipVerify = c.flag(r.TLSSkipVerify); v.TLSSkipVerify {
		c.warnf(r.TLSSkipVerify.Range, "TLS verification is off", "tls_skip_verify = true lets anyone between this host and Vault read the token and the agent keys; set ca_cert instead")
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
		RefreshInterval: c.duration(r.RefreshInterval, render.DefaultRefreshInterval, 5*time.Second, 24*time.Hour),
		MaxBackoff:      c.duration(r.MaxBackoff, backoff.DefaultCeiling, time.Second, time.Hour),
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
				c.errorf(r.Destination.Range, "Duplicate destination", "%s is already written by the template at line %d; each file must have one template", t.Destination, first.Start.Line)
			} else {
				destinations[key] = r.Destination.Range
			}
		}
		out = append(out, t)
	}
	return out
}

func (c *converter) template(r *rawTemplate) Template {
	t := Template{
		ErrorOnMissingKey: c.flagOr(r.ErrorOnMissingKey, true),
		Backup:            c.flagOr(r.Backup, true),
	}
	t.Source, t.Contents = c.templateInput(r)
	var dest string
	if c.required(r.Destination, &dest, r.DefRange, "template", "destination") && c.absPath(dest, r.Destination.Range, "destination") {
		if strings.HasSuffix(dest, "/") {
			c.errorf(r.Destination.Range, "Invalid destination", "destination must be a file, not a directory, got %q", dest)
		} else {
			t.Destination = dest
		}
	}
	t.Perms = c.mode(r.Perms, write.DefaultPerms)
	if t.Perms&0o002 != 0 {
		c.errorf(r.Perms.Range, "World-writable template", "perms %#o would let any user change the rendered file; use 0600 or 0640", t.Perms)
	} else if t.Perms&0o004 != 0 {
		c.warnf(r.Perms.Range, "World-readable template", "perms %#o let every user on the host read the rendered secrets; 0600 or 0640 is safer", t.Perms)
	}
	t.User = c.accountName(r.User)
	t.Group = c.accountName(r.Group)
	if unit, ok := c.text(r.Unit); ok && c.unitName(unit, r.Unit.Range) {
		t.Unit = unit
	}
	if !t.Backup && t.Unit != "" {
		c.warnf(r.Backup.Range, "No backup on disk", "with backup = false no copy of the previous file is kept: a restart of %s owed across a reload or a restart of hostd cannot be rolled back, and there is no file to recover by hand", t.Unit)
	}
	return t
}

// templateInput checks that exactly one of source and contents is given and
// returns the source as written and the template text: the contents, or the
// source file read now, once (what is checked is then what is rendered).
func (c *converter) templateInput(r *rawTemplate) (source, text string) {
	source, sourceOK := c.text(r.Source)
	contents, contentsOK := c.text(r.Contents)
	hasSource, hasContents := r.Source != nil, r.Contents != nil
	switch {
	case hasSource && hasContents:
		c.errorf(r.Contents.Range, "Both source and contents", "a template takes either source (a file) or contents (inline text), not both")
	case !hasSource && !hasContents:
		c.errorf(r.DefRange, "Missing template input", "a template needs source (a template file) or contents (inline template text)")
	case hasContents:
		if contentsOK && contents == "" {
			c.errorf(r.Contents.Range, "Empty contents", "contents is empty; hostd would write an empty file")
		}
	case hasSource:
		if sourceOK && c.absPath(source, r.Source.Range, "source") {
			text, err := readTemplateSource(source)
			if err != nil {
				c.errorf(r.Source.Range, "Unreadable template source", "%v", err)
			}
			return source, text
		}
	}
	return source, contents
}

func (c *converter) telemetry(r *rawTelemetry) Telemetry {
	if r == nil {
		return Telemetry{ListenAddress: DefaultListenAddress}
	}
	addr, ok := c.text(r.ListenAddress)
	if !ok {
		return Telemetry{ListenAddress: DefaultListenAddress}
	}
	if addr == "" {
		return Telemetry{} // disabled on purpose
	}
	if err := checkListenAddress(addr); err != nil {
		c.errorf(r.ListenAddress.Range, "Invalid listen_address", `listen_address must be host:port such as "127.0.0.1:9464", or "" to turn metrics off, got %q: %v`, addr, err)
		return Telemetry{ListenAddress: DefaultListenAddress}
	}
	return Telemetry{ListenAddress: addr}
}

func (c *converter) status(r *rawStatus) Status {
	if r == nil {
		r = &rawStatus{}
	}
	s := Status{SocketPath: DefaultSocketPath}
	if path, ok := c.text(r.SocketPath); ok && c.absPath(path, r.SocketPath.Range, "socket_path") {
		if n := len(path); n > maxSocketPath {
			c.errorf(r.SocketPath.Range, "Socket path too long", "socket_path is %d bytes; a unix socket path can have at most %d", n, maxSocketPath)
		} else {
			s.SocketPath = path
		}
	}
	s.SocketMode = c.mode(r.SocketMode, DefaultSocketMode)
	if s.SocketMode&0o002 != 0 {
		c.warnf(r.SocketMode.Range, "World-writable status socket", "socket_mode %#o lets every user on the host query hostd's status", s.SocketMode)
	}
	return s
}

func (c *converter) log(r *rawLog) Log {
	if r == nil {
		r = &rawLog{}
	}
	return Log{
		Level:  c.oneOf(r.Level, DefaultLogLevel, "debug", "info", "warn", "error"),
		Format: c.oneOf(r.Format, DefaultLogFormat, "text", "json"),
	}
}

// --- reading attributes --------------------------------------------------
//
// Each attribute is decoded once, by one of these: a value of the wrong type
// is reported then, and the attribute is not checked further. Problems name
// an attribute as written (its Name) and point at it (its Range).

// decode reads the value of attribute a into target (a pointer) and reports
// whether a was written and its value decoded, so it is worth checking.
func (c *converter) decode(a *hcl.Attribute, target any) bool {
	if a == nil {
		return false
	}
	diags := gohcl.DecodeExpression(a.Expr, nil, target)
	c.diags = append(c.diags, diags...)
	return !diags.HasErrors()
}

// text decodes a string attribute; ok is as for decode.
func (c *converter) text(a *hcl.Attribute) (value string, ok bool) {
	ok = c.decode(a, &value)
	return value, ok
}

// asWritten is the value of a string attribute taken as it is; "" when it is
// not written.
func (c *converter) asWritten(a *hcl.Attribute) string {
	value, _ := c.text(a)
	return value
}

// flag is the value of a bool attribute; false when it is not written.
func (c *converter) flag(a *hcl.Attribute) bool {
	var value bool
	c.decode(a, &value)
	return value
}

// flagOr is the value of a bool attribute; def when it is not written (or
// written as null).
func (c *converter) flagOr(a *hcl.Attribute, def bool) bool {
	var value *bool
	c.decode(a, &value)
	if value == nil {
		return def
	}
	return *value
}

// required decodes a required attribute like decode; when it was not written
// it adds a problem pointing at its block.
func (c *converter) required(a *hcl.Attribute, target any, block hcl.Range, blockName, attrName string) bool {
	if a == nil {
		c.errorf(block, "Missing "+attrName, "the %s block needs %s", blockName, attrName)
		return false
	}
	return c.decode(a, target)
}

// --- small checks shared by the blocks above -----------------------------

// optionalPath returns the value of a path attribute as written, checking
// that it is absolute.
func (c *converter) optionalPath(a *hcl.Attribute) string {
	value, ok := c.text(a)
	if ok {
		c.absPath(value, a.Range, a.Name)
	}
	return value
}

func (c *converter) absPath(value string, rng hcl.Range, name string) bool {
	if !filepath.IsAbs(value) {
		c.errorf(rng, "Path not absolute", "%s must be an absolute path such as /etc/hostd/..., got %q", name, value)
		return false
	}
	return true
}

func (c *converter) duration(a *hcl.Attribute, def, lo, hi time.Duration) time.Duration {
	value, ok := c.text(a)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(value)
	switch {
	case err != nil:
		c.errorf(a.Range, "Invalid duration", `%s must be a duration such as "30s", "5m" or "1h", got %q`, a.Name, value)
	case d < lo && lo == 0:
		c.errorf(a.Range, "Negative duration", "%s must not be negative, got %s", a.Name, value)
	case d < lo:
		c.errorf(a.Range, "Duration too short", "%s must be at least %s, got %s", a.Name, durationtext.Short(lo), value)
	case d > hi:
		c.errorf(a.Range, "Duration too long", "%s must be at most %s, got %s", a.Name, durationtext.Short(hi), value)
	default:
		return d
	}
	return def
}

func (c *converter) mode(a *hcl.Attribute, def os.FileMode) os.FileMode {
	value, ok := c.text(a)
	if !ok {
		return def
	}
	m, err := parseMode(value)
	if err != nil {
		c.errorf(a.Range, "Invalid file mode", `%s must be an octal mode from "0000" to "0777" such as "0600", got %q`, a.Name, value)
		return def
	}
	return m
}

// oneOf returns the value of a if it is one of allowed, def if it was not
// written.
func (c *converter) oneOf(a *hcl.Attribute, def string, allowed ...string) string {
	value, ok := c.text(a)
	if !ok {
		return def
	}
	for _, v := range allowed {
		if value == v {
			return value
		}
	}
	c.errorf(a.Range, "Invalid "+a.Name, "%s must be one of %s, got %q", a.Name, quoteList(allowed), value)
	return def
}

// accountName returns the value of a user or group attribute as written,
// checking that it can name one.
func (c *converter) accountName(a *hcl.Attribute) string {
	value, ok := c.text(a)
	if ok && (value == "" || strings.ContainsAny(value, " \t\n:/")) {
		c.errorf(a.Range, "Invalid "+a.Name, "%s must be a user or group name or a numeric id, got %q", a.Name, value)
	}
	return value
}

func (c *converter) unitName(value string, rng hcl.Range) bool {
	if err := checkUnitName(value); err != nil {
		c.errorf(rng, "Invalid unit", `unit must be a systemd unit name with its type, such as "sigsci-agent.service", got %q: %v`, value, err)
		return false
	}
	return true
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
