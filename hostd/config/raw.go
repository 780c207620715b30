package config

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// The raw* structs mirror the file as written. Every attribute is optional
// here so that missing ones are reported by the converter with the block's
// position; the *Range fields record where each attribute was written (and a
// zero Range means it was not).

type rawFile struct {
	// Blocks that may appear once are slices so that a repeated block is
	// reported by the converter while the first one is still checked.
	Vault          []*rawVault          `hcl:"vault,block"`
	AutoAuth       []*rawAutoAuth       `hcl:"auto_auth,block"`
	TemplateConfig []*rawTemplateConfig `hcl:"template_config,block"`
	Templates      []*rawTemplate       `hcl:"template,block"`
	Restart        []*rawRestart        `hcl:"restart,block"`
	Telemetry      []*rawTelemetry      `hcl:"telemetry,block"`
	Status         []*rawStatus         `hcl:"status,block"`
	Log            []*rawLog            `hcl:"log,block"`
	Report         []*rawReport         `hcl:"report,block"`

	// set by decodeFile: where "the whole file" is, for missing blocks.
	fileRange hcl.Range
}

type rawVault struct {
	DefRange hcl.Range `hcl:",def_range"`

	Address            string    `hcl:"address,optional"`
	AddressRange       hcl.Range `hcl:"address,attr_range"`
	CACert             string    `hcl:"ca_cert,optional"`
	CACertRange        hcl.Range `hcl:"ca_cert,attr_range"`
	CAPath             string    `hcl:"ca_path,optional"`
	CAPathRange        hcl.Range `hcl:"ca_path,attr_range"`
	ClientCert         string    `hcl:"client_cert,optional"`
	ClientCertRange    hcl.Range `hcl:"client_cert,attr_range"`
	ClientKey          string    `hcl:"client_key,optional"`
	ClientKeyRange     hcl.Range `hcl:"client_key,attr_range"`
	TLSServerName      string    `hcl:"tls_server_name,optional"`
	TLSSkipVerify      bool      `hcl:"tls_skip_verify,optional"`
	TLSSkipVerifyRange hcl.Range `hcl:"tls_skip_verify,attr_range"`
	Namespace          string    `hcl:"namespace,optional"`
}

type rawTemplateConfig struct {
	DefRange hcl.Range `hcl:",def_range"`

	RefreshInterval      string    `hcl:"refresh_interval,optional"`
	RefreshIntervalRange hcl.Range `hcl:"refresh_interval,attr_range"`
	MaxBackoff           string    `hcl:"max_backoff,optional"`
	MaxBackoffRange      hcl.Range `hcl:"max_backoff,attr_range"`
}

type rawTemplate struct {
	DefRange hcl.Range `hcl:",def_range"`

	Source                 string    `hcl:"source,optional"`
	SourceRange            hcl.Range `hcl:"source,attr_range"`
	Contents               string    `hcl:"contents,optional"`
	ContentsRange          hcl.Range `hcl:"contents,attr_range"`
	Destination            string    `hcl:"destination,optional"`
	DestinationRange       hcl.Range `hcl:"destination,attr_range"`
	Perms                  string    `hcl:"perms,optional"`
	PermsRange             hcl.Range `hcl:"perms,attr_range"`
	User                   string    `hcl:"user,optional"`
	UserRange              hcl.Range `hcl:"user,attr_range"`
	Group                  string    `hcl:"group,optional"`
	GroupRange             hcl.Range `hcl:"group,attr_range"`
	ErrorOnMissingKey      *bool     `hcl:"error_on_missing_key,optional"`
	Backup                 *bool     `hcl:"backup,optional"`
	BackupRange            hcl.Range `hcl:"backup,attr_range"`
	Unit                   string    `hcl:"unit,optional"`
	UnitRange              hcl.Range `hcl:"unit,attr_range"`
	ErrorOnMissingKeyRange hcl.Range `hcl:"error_on_missing_key,attr_range"`
}

type rawRestart struct {
	DefRange hcl.Range `hcl:",def_range"`

	Bus                string     `hcl:"bus,optional"`
	BusRange           hcl.Range  `hcl:"bus,attr_range"`
	Debounce           string     `hcl:"debounce,optional"`
	DebounceRange      hcl.Range  `hcl:"debounce,attr_range"`
	Splay              string     `hcl:"splay,optional"`
	SplayRange         hcl.Range  `hcl:"splay,attr_range"`
	JobTimeout         string     `hcl:"job_timeout,optional"`
	JobTimeoutRange    hcl.Range  `hcl:"job_timeout,attr_range"`
	ActiveTimeout      string     `hcl:"active_timeout,optional"`
	ActiveTimeoutRange hcl.Range  `hcl:"active_timeout,attr_range"`
	Window             *rawWindow `hcl:"maintenance_window,block"`

	StableFor               string    `hcl:"stable_for,optional"`
	StableForRange          hcl.Range `hcl:"stable_for,attr_range"`
	RetryRejectedAfter      string    `hcl:"retry_rejected_after,optional"`
	RetryRejectedAfterRange hcl.Range `hcl:"retry_rejected_after,attr_range"`
	Check                   *rawCheck `hcl:"check,block"`
}

type rawCheck struct {
	DefRange     hcl.Range `hcl:",def_range"`
	Command      []string  `hcl:"command,optional"`
	CommandRange hcl.Range `hcl:"command,attr_range"`
	Timeout      string    `hcl:"timeout,optional"`
	TimeoutRange hcl.Range `hcl:"timeout,attr_range"`
}

type rawWindow struct {
	DefRange      hcl.Range `hcl:",def_range"`
	Start         string    `hcl:"start,optional"`
	StartRange    hcl.Range `hcl:"start,attr_range"`
	End           string    `hcl:"end,optional"`
	EndRange      hcl.Range `hcl:"end,attr_range"`
	Timezone      string    `hcl:"timezone,optional"`
	TimezoneRange hcl.Range `hcl:"timezone,attr_range"`
}

type rawTelemetry struct {
	DefRange hcl.Range `hcl:",def_range"`

	ListenAddress      string    `hcl:"listen_address,optional"`
	ListenAddressRange hcl.Range `hcl:"listen_address,attr_range"`
}

type rawStatus struct {
	DefRange hcl.Range `hcl:",def_range"`

	SocketPath      string    `hcl:"socket_path,optional"`
	SocketPathRange hcl.Range `hcl:"socket_path,attr_range"`
	SocketMode      string    `hcl:"socket_mode,optional"`
	SocketModeRange hcl.Range `hcl:"socket_mode,attr_range"`
}

type rawLog struct {
	DefRange hcl.Range `hcl:",def_range"`

	Level       string    `hcl:"level,optional"`
	LevelRange  hcl.Range `hcl:"level,attr_range"`
	Format      string    `hcl:"format,optional"`
	FormatRange hcl.Range `hcl:"format,attr_range"`
}

// decodeFile parses src and decodes it into a rawFile. The result is nil only
// when the file could not be parsed at all.
func decodeFile(filename string, src []byte) (*rawFile, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	var file *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(filename, ".json") {
		file, diags = parser.ParseJSON(src, filename)
	} else {
		file, diags = parser.ParseHCL(src, filename)
	}
	if diags.HasErrors() || file == nil || file.Body == nil {
		// A syntax error makes the rest of the file unreliable to judge.
		return nil, diags
	}
	raw := &rawFile{}
	diags = append(diags, gohcl.DecodeBody(file.Body, nil, raw)...)
	raw.fileRange = file.Body.MissingItemRange()
	return raw, diags
}

// set reports whether an attribute was written in the file.
func set(r hcl.Range) bool { return r.Filename != "" }
