// Package vaulttest starts a real Vault server for hostd's tests.
//
// The Vault binary comes from the environment variable SIGSCI_VAULT_BIN (the
// e2e module builds it; `make test` sets the variable). Without it, tests
// skip with a message saying so, except when CI=true, where they fail: CI must
// run them. The server uses file storage on a temporary directory, so it can be
// stopped and started again with its data (an outage), and it listens on
// 127.0.0.1 only. It also serves Vault over TLS with a CA of its own that
// issues client certificates and a revocation list (certs.go), and puts a
// front end before a server that can compress its answers or go down
// (frontend.go). This package is for tests; hostd itself never imports it.
package vaulttest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// EnvBinary names the environment variable holding the Vault binary's path.
const EnvBinary = "SIGSCI_VAULT_BIN"

// Server is a running (or stopped) Vault server.
type Server struct {
	Addr      string // http://127.0.0.1:<port>, https:// for StartTLS
	RootToken string
	// With StartTLS: PEM files of the CA that signed the server and client
	// certificates, and a client certificate and key for the cert method.
	CACert, ClientCert, ClientKey string

	t         testing.TB
	bin, dir  string
	unsealKey string
	ca        *x509.Certificate // StartTLS: the CA and its key, to issue more certificates
	caKey     *ecdsa.PrivateKey

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start starts an initialised, unsealed Vault server and stops it when the
// test ends. It skips the test when SIGSCI_VAULT_BIN is unset (fails when
// CI=true).
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is Start with a TLS listener. The server accepts (but does not
// require) client certificates, as the cert auth method needs.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		msg := EnvBinary + " is not set: this test needs a real Vault server binary (make test builds one in the e2e module and sets it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI=true, so it must not be skipped")
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v", EnvBinary, err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	listener := "tls_disable = true"
	s.Addr = fmt.Sprintf("http://127.0.0.1:%d", port)
	if useTLS {
		s.Addr = fmt.Sprintf("https://127.0.0.1:%d", port)
		serverCert, serverKey, err := s.writeCertificates()
		if err != nil {
			t.Fatal(err)
		}
		listener = fmt.Sprintf("tls_cert_file = %q\n  tls_key_file = %q", serverCert, serverKey)
	}
	cfg := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address = "127.0.0.1:%d"
  %s
}
disable_mlock = true
api_addr      = %q
log_level     = "warn"
`, filepath.Join(s.dir, "data"), port, listener, s.Addr)
	if err := os.WriteFile(filepath.Join(s.dir, "vault.hcl"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	t.Cleanup(s.dumpLogOnFailure)

	s.Resume()
	s.initialise()
	s.unseal()
	return s
}

// Client returns a new client for the server holding the root token.
func (s *Server) Client() *api.Client {
	s.t.Helper()
	c := s.NewClient()
	c.SetToken(s.RootToken)
	return c
}

// NewClient returns a new client for the server without a token and without
// retries, so tests see failures as they happen.
func (s *Server) NewClient() *api.Client {
	s.t.Helper()
	var files *api.TLSConfig
	if s.CACert != "" {
		files = &api.TLSConfig{CACert: s.CACert}
	}
	return ClientFor(s.t, s.Addr, files)
}

// ClientFor returns a client for addr (a Server, or a FrontEnd before one)
// without a token and without retries. With files, it reads them once, as
// hostd does at start.
func ClientFor(t testing.TB, addr string, files *api.TLSConfig) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	if files != nil {
		if err := cfg.ConfigureTLS(files); err != nil {
			t.Fatal(err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	return c
}

// Pause stops the server process (an outage: connections are refused).
// Its data stays; Resume brings it back.
func (s *Server) Pause() {
	s.t.Helper()
	s.stop()
}

// Resume starts the server process again and unseals it.
func (s *Server) Resume() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	if s.log == nil {
		f, err := os.Create(filepath.Join(s.dir, "vault.log"))
		if err != nil {
			s.mu.Unlock()
			s.t.Fatal(err)
		}
		s.log = f
	}
	cmd := exec.Command(s.bin, "server", "-config="+filepath.Join(s.dir, "vault.hcl"))
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Env = append(os.Environ(), "VAULT_LOG_LEVEL=warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start vault: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	s.waitFor(func(code int) bool { return code != 0 }, "vault to listen")
	if s.unsealKey != "" {
		s.unseal()
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (s *Server) initialise() {
	s.t.Helper()
	resp, err := s.NewClient().Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		s.t.Fatalf("init vault: %v", err)
	}
	s.unsealKey, s.RootToken = resp.KeysB64[0], resp.RootToken
}

func (s *Server) unseal() {
	s.t.Helper()
	if _, err := s.NewClient().Sys().Unseal(s.unsealKey); err != nil {
		s.t.Fatalf("unseal vault: %v", err)
	}
	s.waitFor(func(code int) bool { return code == http.StatusOK }, "vault to be active")
}

// waitFor polls sys/health until ok(status code) holds, with a deadline.
// Code 0 means no answer.
func (s *Server) waitFor(ok func(code int) bool, what string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	hc := s.NewClient().CloneConfig().HttpClient
	hc.Timeout = 2 * time.Second
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		code := 0
		if resp, err := hc.Get(s.Addr + "/v1/sys/health"); err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
		if ok(code) {
			return
		}
		s.mu.Lock()
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
			s.t.Fatalf("vault exited while waiting for %s:\n%s", what, s.logTail())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s (last status %d):\n%s", what, code, s.logTail())
		}
	}
}

func (s *Server) dumpLogOnFailure() {
	if s.t.Failed() {
		s.t.Logf("vault log:\n%s", s.logTail())
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "vault.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// AppRole describes an approle role set up by EnableAppRole.
type AppRole struct {
	Mount, Role, RoleID string
}

// EnableAppRole mounts approle at mount (if not yet), writes role with the
// given settings (for example token_ttl, token_max_ttl, token_policies) and
// returns its role-id.
func (s *Server) EnableAppRole(mount, role string, settings map[string]any) AppRole {
	s.t.Helper()
	c := s.Client()
	err := c.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"})
	if err != nil && !strings.Contains(err.Error(), "path is already in use") {
		s.t.Fatalf("enable approle: %v", err)
	}
	if _, err := c.Logical().Write("auth/"+mount+"/role/"+role, settings); err != nil {
		s.t.Fatalf("write approle role: %v", err)
	}
	sec, err := c.Logical().Read("auth/" + mount + "/role/" + role + "/role-id")
	if err != nil || sec == nil {
		s.t.Fatalf("read role-id: %v", err)
	}
	return AppRole{Mount: mount, Role: role, RoleID: sec.Data["role_id"].(string)}
}

// NewSecretID issues a secret-id for the role.
func (s *Server) NewSecretID(r AppRole) string {
	s.t.Helper()
	sec, err := s.Client().Logical().Write("auth/"+r.Mount+"/role/"+r.Role+"/secret-id", nil)
	if err != nil || sec == nil {
		s.t.Fatalf("issue secret-id: %v", err)
	}
	return sec.Data["secret_id"].(string)
}

// WritePolicy writes an ACL policy.
func (s *Server) WritePolicy(name, rules string) {
	s.t.Helper()
	if err := s.Client().Sys().PutPolicy(name, rules); err != nil {
		s.t.Fatalf("write policy %s: %v", name, err)
	}
}

// Mount mounts a secrets engine (for example "kv" with options version=2).
func (s *Server) Mount(path, engine string, options map[string]string) {
	s.t.Helper()
	if err := s.Client().Sys().Mount(path, &api.MountInput{Type: engine, Options: options}); err != nil {
		s.t.Fatalf("mount %s at %s: %v", engine, path, err)
	}
}

// Write writes data at path with the root token.
func (s *Server) Write(path string, data map[string]any) {
	s.t.Helper()
	if _, err := s.Client().Logical().Write(path, data); err != nil {
		s.t.Fatalf("write %s: %v", path, err)
	}
}
