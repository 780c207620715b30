package config

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// The raw* structs mirror the file as written. Every attribute is optional
// here so that missing ones are reported by the converter with the block's
// position. An attribute is kept as written (nil when it is not), with its
// name and place; the converter decodes its value.

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

	Address       *hcl.Attribute `hcl:"address,optional"`
	CACert        *hcl.Attribute `hcl:"ca_cert,optional"`
	CAPath        *hcl.Attribute `hcl:"ca_path,optional"`
	ClientCert    *hcl.Attribute `hcl:"client_cert,optional"`
	ClientKey     *hcl.Attribute `hcl:"client_key,optional"`
	TLSServerName *hcl.Attribute `hcl:"tls_server_name,optional"`
	TLSSkipVerify *hcl.Attribute `hcl:"tls_skip_verify,optional"`
	Namespace     *hcl.Attribute `hcl:"namespace,optional"`
}

type rawTemplateConfig struct {
	DefRange hcl.Range `hcl:",def_range"`

	RefreshInterval *hcl.Attribute `hcl:"refresh_interval,optional"`
	MaxBackoff      *hcl.Attribute `hcl:"max_backoff,optional"`
}

type rawTemplate struct {
	DefRange hcl.Range `hcl:",def_range"`

	Source            *hcl.Attribute `hcl:"source,optional"`
	Contents          *hcl.Attribute `hcl:"contents,optional"`
	Destination       *hcl.Attribute `hcl:"destination,optional"`
	Perms             *hcl.Attribute `hcl:"perms,optional"`
	User              *hcl.Attribute `hcl:"user,optional"`
	Group             *hcl.Attribute `hcl:"group,optional"`
	ErrorOnMissingKey *hcl.Attribute `hcl:"error_on_missing_key,optional"`
	Backup            *hcl.Attribute `hcl:"backup,optional"`
	Unit              *hcl.Attribute `hcl:"unit,optional"`
}

type rawRestart struct {
	DefRange hcl.Range `hcl:",def_range"`

	Bus           *hcl.Attribute `hcl:"bus,optional"`
	Debounce      *hcl.Attribute `hcl:"debounce,optional"`
	Splay         *hcl.Attribute `hcl:"splay,optional"`
	JobTimeout    *hcl.Attribute `hcl:"job_timeout,optional"`
	ActiveTimeout *hcl.Attribute `hcl:"active_timeout,optional"`
	Window        *rawWindow     `hcl:"maintenance_window,block"`

	StableFor          *hcl.Attribute `hcl:"stable_for,optional"`
	RetryRejectedAfter *hcl.Attribute `hcl:"retry_rejected_after,optional"`
	Check              *rawCheck      `hcl:"check,block"`
}

type rawCheck struct {
	DefRange hcl.Range      `hcl:",def_range"`
	Command  *hcl.Attribute `hcl:"command,optional"`
	Timeout  *hcl.Attribute `hcl:"timeout,optional"`
}

type rawWindow struct {
	DefRange hcl.Range      `hcl:",def_range"`
	Start    *hcl.Attribute `hcl:"start,optional"`
	End      *hcl.Attribute `hcl:"end,optional"`
	Timezone *hcl.Attribute `hcl:"timezone,optional"`
}

type rawTelemetry struct {
	DefRange hcl.Range `hcl:",def_range"`

	ListenAddress *hcl.Attribute `hcl:"listen_address,optional"`
}

type rawStatus struct {
	DefRange hcl.Range `hcl:",def_range"`

	SocketPath *hcl.Attribute `hcl:"socket_path,optional"`
	SocketMode *hcl.Attribute `hcl:"socket_mode,optional"`
}

type rawLog struct {
	DefRange hcl.Range `hcl:",def_range"`

	Level  *hcl.Attribute `hcl:"level,optional"`
	Format *hcl.Attribute `hcl:"format,optional"`
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
