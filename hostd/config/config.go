// Package config owns hostd's configuration file: the HCL schema, the
// defaults, and the validation that reports every mistake with its
// file:line:col. It produces plain Go values for the other hostd packages
// (each template's text included: it reads every template source file once,
// when it loads) and must not start anything, talk to Vault or systemd, or
// read secret files.
//
// A setting's default and its allowed names (auth methods, buses) belong to
// the package that uses the setting (auth, render, write, rollout, restart,
// report); config refers to them, and those packages never import config.
// config holds only the host-wide defaults no stage owns: the restart
// debounce and splay, the metrics address, the status socket and logging.
package config

import (
	"fmt"
	"os"
	"time"
)

// Config is a validated hostd configuration with every default filled in.
type Config struct {
	Vault          Vault
	AutoAuth       AutoAuth
	TemplateConfig TemplateConfig
	Templates      []Template
	Restart        Restart
	Telemetry      Telemetry
	Status         Status
	Log            Log
	Report         Report
	Path           string // file it came from

	// Warnings are things that are allowed but probably not what the
	// operator wants (TLS verification off, a template readable by everyone).
	Warnings []Problem
}

// Vault says where Vault is and how to reach it over TLS.
type Vault struct {
	Address       string
	CACert        string
	CAPath        string
	ClientCert    string
	ClientKey     string
	TLSServerName string
	Namespace     string
	TLSSkipVerify bool
}

// AutoAuth is the single login method hostd uses. Only the fields of Method
// are set.
type AutoAuth struct {
	Method                         string // one of auth's Method* names
	MountPath                      string // without leading or trailing slash; empty for token_file
	RoleIDFile, SecretIDFile       string
	RemoveSecretIDFileAfterReading bool
	SecretIDResponseWrappingPath   string // approle: the secret-id file holds a wrapping token created here
	CertName                       string
	Role, JWTFile                  string // jwt
	TokenFile                      string
}

// TemplateConfig holds settings shared by every template.
type TemplateConfig struct {
	// RefreshInterval is how often secrets are re-read (jittered by the
	// renderer).
	RefreshInterval time.Duration
	// MaxBackoff caps hostd's retry delays, the templates' and
	// beyond: consul-template's retries of a failed Vault read and the
	// renderer's restarts of its runner (render), the waits between failed
	// logins and failed token renewals (auth, from 1s, doubling), and the
	// waits before retrying a restart that said nothing about the new files
	// or a unit whose process could not be read (rollout, from 30s,
	// doubling). The fleet report is the exception: its retries go from 5s
	// up to 5m or its interval, whichever is shorter (hostd/report).
	MaxBackoff time.Duration
}

// Template is one file hostd renders. Contents is the template text, given
// inline or read from the Source file when the configuration was loaded (the
// file is read once: what was checked is what is rendered); Source names
// that file, for messages, and is empty for inline contents.
type Template struct {
	Source, Contents, Destination string
	Perms                         os.FileMode
	User, Group                   string
	ErrorOnMissingKey, Backup     bool
	Unit                          string // systemd unit restarted when Destination changes; may be empty
}

// Restart is the policy for restarting units whose files changed.
type Restart struct {
	Bus             string // restart.SystemBus or restart.UserBus
	Debounce, Splay time.Duration
	// JobTimeout zero: derived from the unit's own timeouts at each restart.
	JobTimeout, ActiveTimeout, StableFor time.Duration
	RetryRejectedAfter                   time.Duration
	Check                                *Check  // nil: no check command
	Window                               *Window // nil: restart at any time
}

// Check is a command run after a restart once the unit has stayed up; a
// failure rolls the change back.
type Check struct {
	Command []string // argv, Command[0] an absolute path; no shell
	Timeout time.Duration
}

// Telemetry configures the Prometheus endpoint.
type Telemetry struct {
	ListenAddress string // host:port; empty disables the endpoint
}

// Status configures the local status socket.
type Status struct {
	SocketPath string
	SocketMode os.FileMode
}

// Report configures the fleet report: which access key each agent runs,
// written to Vault for every sigsci creds secret hostd reads (none is sent
// for a configuration that reads none).
type Report struct {
	Enabled  bool
	Host     string        // the host's name in the fleet
	Interval time.Duration // heartbeat
}

// Log configures hostd's own logging.
type Log struct {
	Level  string // debug, info, warn or error
	Format string // text or json
}

// Defaults for a WAF host that no other package has. The rest are the
// defaults of the package that uses the setting (render, write, rollout,
// report, auth), taken from there, so each is defined once.
const (
	DefaultDebounce      = 2 * time.Second
	DefaultSplay         = 30 * time.Second
	DefaultListenAddress = "127.0.0.1:9464"
	DefaultSocketPath    = "/run/hostd/hostd.sock"
	DefaultSocketMode    = os.FileMode(0o600)
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "text"
)

// Load reads, parses and validates the configuration file at path. The error
// is an *Error listing every problem when the file is readable.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(path, src)
}

// Parse parses and validates src, naming it filename in problems. A file
// ending in .json is read as HCL's JSON syntax, anything else as native HCL.
// Template source files are checked to be readable.
func Parse(filename string, src []byte) (*Config, error) {
	raw, diags := decodeFile(filename, src)
	var cfg *Config
	if raw != nil {
		c := newConverter(diags)
		cfg = c.config(raw)
		diags = c.diags
	}
	if diags.HasErrors() {
		return nil, &Error{Problems: problems(filename, diags, true)}
	}
	cfg.Path = filename
	cfg.Warnings = problems(filename, diags, false)
	return cfg, nil
}
