package auth

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
)

func isLogin(ok bool) func(event.Auth) bool {
	return func(e event.Auth) bool { return !e.Renewal && e.OK == ok }
}

func isRenewal(e event.Auth) bool { return e.Renewal && e.OK }

type harness struct {
	vault  *vaulttest.Server
	role   vaulttest.AppRole
	dir    string
	events *eventtest.Recorder[event.Auth]
	logs   *logbuf.Buffer
	auth   *Authenticator
	tokens []string // every token seen, checked against events and logs
}

// newAppRoleHarness starts Vault with an approle role whose tokens live 3s
// (renewable up to 8s) and writes role-id and secret-id files.
func newAppRoleHarness(t *testing.T, settings map[string]any) *harness {
	v := vaulttest.Start(t)
	if settings == nil {
		settings = map[string]any{}
	}
	for k, v := range map[string]any{"token_ttl": "3s", "token_max_ttl": "8s"} {
		if _, set := settings[k]; !set {
			settings[k] = v
		}
	}
	h := newHarness(v, t.TempDir())
	h.role = v.EnableAppRole("approle", "waf", settings)
	h.writeFile(t, "role-id", h.role.RoleID)
	h.writeFile(t, "secret-id", v.NewSecretID(h.role))
	return h
}

func (h *harness) writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, name), []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) options(method string) Options {
	return Options{
		Client:       h.vault.NewClient(),
		Method:       method,
		RoleIDFile:   filepath.Join(h.dir, "role-id"),
		SecretIDFile: filepath.Join(h.dir, "secret-id"),
		TokenFile:    filepath.Join(h.dir, "token"),
		MinBackoff:   200 * time.Millisecond,
		MaxBackoff:   time.Second,
		Reporting: stage.Reporting{
			Sink:   h.events,
			Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		},
	}
}

// newHarness watches the events and logs of Authenticators logging in to v,
// with files in dir.
func newHarness(v *vaulttest.Server, dir string) *harness {
	return &harness{vault: v, dir: dir, events: eventtest.New[event.Auth](), logs: &logbuf.Buffer{}}
}

// start runs an Authenticator until the test ends and checks, at the end,
// that no token it held appeared in an event or a log line.
func (h *harness) start(t *testing.T, opts Options) *Authenticator {
	t.Helper()
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.assertNoTokenLeaked(t) }) // once Run has returned
	runtest.UntilEnd(t, 10*time.Second, context.Canceled, a.Run)
	h.auth = a
	return a
}

func (h *harness) seeToken(t *testing.T) string {
	t.Helper()
	tok := h.auth.Token()
	if tok == "" {
		t.Fatal("no token after a successful login")
	}
	h.tokens = append(h.tokens, tok)
	return tok
}

// waitNewLogin waits, from event next on, for a successful login and
// returns the token it got, which must not be old.
func (h *harness) waitNewLogin(t *testing.T, next int, timeout time.Duration, what, old string) string {
	t.Helper()
	h.events.WaitFor(t, next, timeout, what, isLogin(true))
	fresh := h.seeToken(t)
	if fresh == old {
		t.Fatalf("%s: still the old token", what)
	}
	return fresh
}

func (h *harness) assertNoTokenLeaked(t *testing.T) {
	t.Helper()
	logs := h.logs.String()
	evs := fmt.Sprintf("%+v", h.events.All())
	for _, tok := range h.tokens {
		if strings.Contains(logs, tok) || strings.Contains(evs, tok) {
			t.Errorf("a token appeared in logs or events")
		}
	}
}

// tokenWorks asks Vault whether tok is a live token.
func tokenWorks(t *testing.T, v *vaulttest.Server, tok string) error {
	t.Helper()
	c := v.NewClient()
	c.SetToken(tok)
	_, err := c.Auth().Token().LookupSelf()
	return err
}

func waitReady(t *testing.T, a *Authenticator, timeout time.Duration) {
	t.Helper()
	select {
	case <-a.Ready():
	case <-time.After(timeout):
		t.Fatalf("not ready within %s; state %+v", timeout, a.State())
	}
}

func TestAppRoleLoginRenewsThenLogsInAgainAtMaxTTL(t *testing.T) {
	h := newAppRoleHarness(t, nil)
	a := h.start(t, h.options(MethodAppRole))

	waitReady(t, a, 10*time.Second)
	first := h.seeToken(t)
	if err := tokenWorks(t, h.vault, first); err != nil {
		t.Fatalf("the login token does not work: %v", err)
	}
	login, next := h.events.WaitFor(t, 0, time.Second, "login event", isLogin(true))
	if login.Method != MethodAppRole || !login.Renewable || login.TokenExpiry.IsZero() {
		t.Fatalf("login event %+v, want approle, renewable, with an expiry", login)
	}
	if st := a.State(); !st.Authenticated || st.LastLogin.IsZero() {
		t.Fatalf("state %+v, want authenticated", st)
	}

	// The token lives 3s: it is renewed about every 2s.
	renewal, next := h.events.WaitFor(t, next, 6*time.Second, "renewal event", isRenewal)
	if renewal.TokenExpiry.Before(login.TokenExpiry) {
		t.Fatalf("renewal expiry %s before login expiry %s", renewal.TokenExpiry, login.TokenExpiry)
	}
	if a.Token() != first {
		t.Fatal("renewal changed the token")
	}

	// Max TTL 8s: before it, a fresh login replaces the token.
	second := h.waitNewLogin(t, next, 12*time.Second, "second login", first)
	if err := tokenWorks(t, h.vault, second); err != nil {
		t.Fatalf("the new token does not work: %v", err)
	}
}

func TestAppRoleReadsRotatedSecretID(t *testing.T) {
	h := newAppRoleHarness(t, nil)
	a := h.start(t, h.options(MethodAppRole))
	waitReady(t, a, 10*time.Second)
	h.seeToken(t)
	_, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))

	// Rotate: a new secret-id in the file, the old one destroyed in Vault.
	old := strings.TrimSpace(hosttest.ReadFile(t, filepath.Join(h.dir, "secret-id")))
	h.writeFile(t, "secret-id", h.vault.NewSecretID(h.role))
	h.vault.Write("auth/approle/role/waf/secret-id/destroy", map[string]any{"secret_id": old})

	h.events.WaitFor(t, next, 12*time.Second, "login with the rotated secret-id", isLogin(true))
	h.seeToken(t)
	for _, e := range h.events.All() {
		if !e.Renewal && !e.OK {
			t.Fatalf("a login failed although the file held a valid secret-id: %+v", e)
		}
	}
}

func TestWrongSecretIDBacksOffThenRecoversWhenFileIsFixed(t *testing.T) {
	h := newAppRoleHarness(t, nil)
	good := hosttest.ReadFile(t, filepath.Join(h.dir, "secret-id"))
	h.writeFile(t, "secret-id", "00000000-0000-0000-0000-000000000000")
	opts := h.options(MethodAppRole)
	a := h.start(t, opts)

	// Four failures: waits of [100,200], [200,400], [400,800], [500,1000] ms.
	var failures []event.Auth
	next := 0
	for len(failures) < 4 {
		var e event.Auth
		e, next = h.events.WaitFor(t, next, 5*time.Second, "failed login", isLogin(false))
		failures = append(failures, e)
	}
	if !strings.Contains(failures[0].Err, "invalid role or secret ID") || !strings.Contains(failures[0].Err, "400") {
		t.Fatalf("failure event %q, want Vault's status and message", failures[0].Err)
	}
	for i := 1; i < len(failures); i++ {
		gap := failures[i].Time.Sub(failures[i-1].Time)
		floor := backoff.Delay(i, opts.MinBackoff, opts.MaxBackoff, func() float64 { return 0 })
		if gap < floor {
			t.Fatalf("attempt %d came %s after the previous one, want at least %s (backoff)", i+1, gap, floor)
		}
		if gap > 3*opts.MaxBackoff {
			t.Fatalf("attempt %d came %s after the previous one, above the %s cap", i+1, gap, opts.MaxBackoff)
		}
	}
	select {
	case <-a.Ready():
		t.Fatal("ready although every login failed")
	default:
	}
	if st := a.State(); st.Authenticated || st.ConsecutiveFailures < 4 || !strings.Contains(st.LastError, "invalid role or secret ID") {
		t.Fatalf("state %+v, want unauthenticated with the failures counted", st)
	}

	h.writeFile(t, "secret-id", strings.TrimSpace(good))
	h.events.WaitFor(t, next, 5*time.Second, "login after fixing the file", isLogin(true))
	waitReady(t, a, time.Second)
	h.seeToken(t)
	if st := a.State(); !st.Authenticated || st.ConsecutiveFailures != 0 {
		t.Fatalf("state %+v, want authenticated, failures reset", st)
	}
}

func TestRevokedTokenIsReplacedWhenVaultRejectsIt(t *testing.T) {
	// A long TTL: the next renewal is far away, so only the rejection can
	// cause a quick login.
	h := newAppRoleHarness(t, map[string]any{"token_ttl": "2m", "token_max_ttl": "10m"})
	a := h.start(t, h.options(MethodAppRole))
	waitReady(t, a, 10*time.Second)
	revoked := h.seeToken(t)
	_, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))

	if err := h.vault.Client().Auth().Token().RevokeOrphan(revoked); err != nil {
		t.Fatal(err)
	}
	a.TokenRejected("some-other-token") // not ours: ignored
	a.TokenRejected(revoked)

	rejected, next := h.events.WaitFor(t, next, 2*time.Second, "rejection event", func(e event.Auth) bool { return !e.OK })
	if !strings.Contains(rejected.Err, "rejected") || !rejected.Rejected {
		t.Fatalf("event %+v, want the rejection reported", rejected)
	}
	fresh := h.waitNewLogin(t, next, 3*time.Second, "login after rejection", revoked)
	if err := tokenWorks(t, h.vault, fresh); err != nil {
		t.Fatalf("new token does not work: %v", err)
	}
}

func TestSecretIDFileRemovedAfterReadingIsReusedFromMemory(t *testing.T) {
	h := newAppRoleHarness(t, nil)
	opts := h.options(MethodAppRole)
	opts.RemoveSecretIDFileAfterReading = true
	a := h.start(t, opts)
	waitReady(t, a, 10*time.Second)
	first := h.seeToken(t)
	if _, err := os.Stat(opts.SecretIDFile); !os.IsNotExist(err) {
		t.Fatalf("secret-id file still there after login (stat err %v)", err)
	}

	_, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))
	a.TokenRejected(first) // force a second login
	h.waitNewLogin(t, next, 5*time.Second, "second login without the file", first)
	for _, e := range h.events.All() {
		if !e.Renewal && !e.OK {
			t.Fatalf("a login failed: %+v", e)
		}
	}
}

func TestTokenFileIsRenewed(t *testing.T) {
	h := newAppRoleHarness(t, nil)
	sec, err := h.vault.Client().Auth().Token().Create(&api.TokenCreateRequest{TTL: "3s", ExplicitMaxTTL: "30s", Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	h.writeFile(t, "token", sec.Auth.ClientToken)
	a := h.start(t, h.options(MethodTokenFile))
	waitReady(t, a, 10*time.Second)
	if h.seeToken(t) != sec.Auth.ClientToken {
		t.Fatal("Token() is not the token from the file")
	}
	login, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))
	if login.Method != MethodTokenFile || !login.Renewable || login.TokenExpiry.IsZero() {
		t.Fatalf("login event %+v, want renewable token_file with expiry", login)
	}
	h.events.WaitFor(t, next, 6*time.Second, "renewal", isRenewal)
}

func TestNewRejectsIncompleteOptions(t *testing.T) {
	client, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Options{
		"no client":           {Method: MethodAppRole, RoleIDFile: "r", SecretIDFile: "s"},
		"no method":           {Client: client},
		"unknown method":      {Client: client, Method: "kubernetes"},
		"approle, no files":   {Client: client, Method: MethodAppRole},
		"token_file, no path": {Client: client, Method: MethodTokenFile},
		"cert, no key pair":   {Client: client, Method: MethodCert, TLS: &api.TLSConfig{CACert: "ca.pem"}},
		"jwt, no role":        {Client: client, Method: MethodJWT, JWTFile: "/run/jwt"},
		"jwt, no file":        {Client: client, Method: MethodJWT, Role: "waf"},
	}
	for name, opts := range cases {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestMountPathIsNormalised(t *testing.T) {
	for in, want := range map[string]string{"": "auth/approle", "approle": "auth/approle", "auth/approle/": "auth/approle", "/auth/x": "auth/x"} {
		if got := withDefaults(Options{Method: MethodAppRole, MountPath: in}).MountPath; got != want {
			t.Errorf("mount %q → %q, want %q", in, got, want)
		}
	}
}

func TestCertLoginWithTheClientsCertificate(t *testing.T) {
	v := vaulttest.StartTLS(t)
	root := v.Client()
	if err := root.Sys().EnableAuthWithOptions("cert", &api.EnableAuthOptions{Type: "cert"}); err != nil {
		t.Fatal(err)
	}
	ca := hosttest.ReadFile(t, v.CACert)
	v.Write("auth/cert/certs/waf-hosts", map[string]any{"certificate": ca, "token_ttl": "3s", "token_max_ttl": "8s"})
	if _, err := v.NewClient().Logical().Write("auth/cert/login", map[string]any{"name": "waf-hosts"}); err == nil {
		t.Fatal("a login without a client certificate succeeded; the test would prove nothing")
	}

	cfg := api.DefaultConfig()
	cfg.Address = v.Addr
	cfg.MaxRetries = 0
	if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: v.CACert, ClientCert: v.ClientCert, ClientKey: v.ClientKey}); err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(v, t.TempDir())
	opts := h.options(MethodCert)
	opts.Client, opts.CertName = client, "waf-hosts"
	opts.TLS = &api.TLSConfig{CACert: v.CACert, ClientCert: v.ClientCert, ClientKey: v.ClientKey}
	a := h.start(t, opts)

	waitReady(t, a, 10*time.Second)
	tok := h.seeToken(t)
	if err := tokenWorks(t, v, tok); err != nil {
		t.Fatalf("cert login token does not work: %v", err)
	}
	_, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))
	h.events.WaitFor(t, next, 6*time.Second, "renewal", isRenewal)
}

// An Authenticator formatted into a log line or an error by mistake shows
// its method, never the token, the secret-id or the wrapping token it holds
// (a plain secret-id, then a wrapped one).
func TestFormattedAuthenticatorShowsNoCredential(t *testing.T) {
	for _, wrapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%t", wrapped), func(t *testing.T) {
			h := newAppRoleHarness(t, nil)
			opts := h.options(MethodAppRole)
			if wrapped {
				h.writeFile(t, "secret-id", wrappedSecretID(t, h.vault))
				opts.SecretIDResponseWrappingPath = wrappingPath
			}
			credential, err := os.ReadFile(opts.SecretIDFile)
			if err != nil {
				t.Fatal(err)
			}
			a := h.start(t, opts)
			waitReady(t, a, 10*time.Second)
			token := h.seeToken(t)
			a.secretIDMu.Lock()
			secretID := a.lastSecretID // the unwrapped one, when wrapped
			a.secretIDMu.Unlock()
			if secretID == "" {
				t.Fatal("no secret-id kept after the login")
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
				for _, v := range []any{a, []*Authenticator{a}} {
					out := fmt.Sprintf(verb, v)
					for _, held := range []string{token, strings.TrimSpace(string(credential)), secretID} {
						if strings.Contains(out, held) {
							t.Errorf("%s of %T shows a credential", verb, v)
						}
					}
				}
			}
			if out := fmt.Sprintf("%v", a); !strings.Contains(out, MethodAppRole) {
				t.Errorf("%%v = %q, want the method", out)
			}
		})
	}
}
