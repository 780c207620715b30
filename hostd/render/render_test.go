package render

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// refresh is the one refresh interval of this test binary: consul-template
// keeps the first value it sees for the whole process.
const refresh = 5 * time.Second

// ctLogs receives consul-template's standard log output through LogWriter
// for the whole test binary, so tests can check what would reach the log.
var ctLogs = &logbuf.Buffer{}

func TestMain(m *testing.M) {
	restore := CaptureStdLog(slog.New(slog.NewTextHandler(ctLogs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	code := m.Run()
	restore()
	os.Exit(code)
}

func renderOf(dest string, pred func(event.Render) bool) func(event.Event) bool {
	return func(e event.Event) bool {
		r, ok := e.(event.Render)
		return ok && r.Template == dest && pred(r)
	}
}

func changed(r event.Render) bool { return r.Changed && r.Err == "" }
func failed(r event.Render) bool  { return r.Err != "" }

// changes collects OnChange batches.
type changes struct {
	ch chan []Change
}

func newChanges() *changes                 { return &changes{ch: make(chan []Change, 100)} }
func (c *changes) onChange(batch []Change) { c.ch <- batch }

func (c *changes) next(t *testing.T, timeout time.Duration) []Change {
	t.Helper()
	select {
	case b := <-c.ch:
		return b
	case <-time.After(timeout):
		t.Fatalf("no change batch within %s", timeout)
		return nil
	}
}

func (c *changes) none(t *testing.T) {
	t.Helper()
	select {
	case b := <-c.ch:
		t.Fatalf("unexpected change batch %+v", b)
	default:
	}
}

// stack is a real Vault, hostd's auth logged in to it and the proxy.
type stack struct {
	vault *vaulttest.Server
	auth  *auth.Authenticator
	proxy *vaultproxy.Proxy
	// upstream is the proxy's transport to Vault; tests close its idle
	// keep-alive connections before counting goroutines.
	upstream *http.Transport
	requests *requestCounter // what the proxy sent to Vault
	events   *eventtest.Recorder[event.Event]
	logs     *logbuf.Buffer
	interval time.Duration // how often the proxy and the renderer re-read
	dir      string
	tokens   []string
}

func newStack(t *testing.T) *stack { return newStackReadingEvery(t, refresh) }

// newStackReadingEvery is newStack with the proxy re-reading secrets every
// interval.
func newStackReadingEvery(t *testing.T, interval time.Duration) *stack {
	v := vaulttest.Start(t)
	v.Mount("secret", "kv", map[string]string{"version": "2"})
	v.WritePolicy("waf", `path "secret/data/*" { capabilities = ["read"] }`)
	role := v.EnableAppRole("approle", "waf", map[string]any{
		"token_policies": "waf", "token_ttl": "1m", "token_max_ttl": "10m",
	})
	s := &stack{vault: v, events: eventtest.New[event.Event](), logs: &logbuf.Buffer{}, dir: t.TempDir(), interval: interval}
	creds := t.TempDir()
	os.WriteFile(filepath.Join(creds, "role-id"), []byte(role.RoleID), 0o600)
	os.WriteFile(filepath.Join(creds, "secret-id"), []byte(v.NewSecretID(role)), 0o600)

	logger := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := auth.New(auth.Options{
		Client: v.NewClient(), Method: auth.MethodAppRole,
		RoleIDFile: filepath.Join(creds, "role-id"), SecretIDFile: filepath.Join(creds, "secret-id"),
		MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second,
		Reporting: stage.Reporting{Sink: s.events, Logger: logger},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	authDone := make(chan struct{})
	go func() { a.Run(ctx); close(authDone) }()
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("auth not ready: %+v", a.State())
	}
	s.auth = a
	s.tokens = append(s.tokens, a.Token())

	s.upstream = http.DefaultTransport.(*http.Transport).Clone()
	s.requests = &requestCounter{next: s.upstream, paths: map[string]int{}}
	p, err := vaultproxy.New(vaultproxy.Options{
		Upstream: v.Addr, Transport: s.requests, Tokens: a, RefreshInterval: interval, Reporting: stage.Reporting{Sink: s.events, Logger: logger},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.proxy = p
	t.Cleanup(func() {
		p.Close()
		cancel()
		<-authDone
		s.assertNoTokenLogged(t)
	})
	return s
}

// requestCounter counts the requests the proxy sends to Vault, per path
// (without /v1/).
type requestCounter struct {
	next  http.RoundTripper
	mu    sync.Mutex
	paths map[string]int
}

func (c *requestCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.paths[strings.TrimPrefix(r.URL.Path, "/v1/")]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *requestCounter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[path]
}

func (s *stack) assertNoTokenLogged(t *testing.T) {
	t.Helper()
	s.tokens = append(s.tokens, s.auth.Token())
	for _, tok := range s.tokens {
		if tok == "" {
			continue
		}
		if strings.Contains(s.logs.String(), tok) || strings.Contains(ctLogs.String(), tok) {
			t.Error("a Vault token reached a log")
		}
		if strings.Contains(fmt.Sprintf("%+v", s.events.All()), tok) {
			t.Error("a Vault token reached an event")
		}
	}
}

func (s *stack) writeSecret(t *testing.T, name, value string) {
	t.Helper()
	s.vault.Write("secret/data/"+name, map[string]any{"data": map[string]any{"access_key": value}})
}

// start runs a Renderer until the test ends; Run must return when its
// context is cancelled.
func (s *stack) start(t *testing.T, c *changes, templates ...Template) *Renderer {
	t.Helper()
	r, err := New(Options{
		Templates: templates, Dialer: s.proxy, RefreshInterval: s.interval,
		MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
		OnChange: c.onChange,
		Reporting: stage.Reporting{
			Sink:   s.events,
			Logger: slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runtest.UntilEnd(t, 15*time.Second, context.Canceled, r.Run)
	return r
}

// startOnAgentKey writes key-v1 to the secret "agent", runs a Renderer of
// its template (for unit) until the test ends and waits for the first
// render; next is the index of the event after that render.
func (s *stack) startOnAgentKey(t *testing.T, unit string) (r *Renderer, c *changes, tmpl Template, next int) {
	t.Helper()
	s.writeSecret(t, "agent", "key-v1")
	c = newChanges()
	tmpl = keyTemplate(s.dir, "agent", unit)
	r = s.start(t, c, tmpl)
	_, next = s.events.WaitFor(t, 0, 15*time.Second, "first render", renderOf(tmpl.Destination, changed))
	return r, c, tmpl, next
}

func keyTemplate(dir, name, unit string) Template {
	return Template{
		Contents:          `access_key = "{{ with secret "secret/data/` + name + `" }}{{ .Data.data.access_key }}{{ end }}"` + "\n",
		Destination:       filepath.Join(dir, name+".conf"),
		Perms:             0o640,
		ErrorOnMissingKey: true,
		Backup:            true,
		Unit:              unit,
	}
}

func TestSecretChangeReachesTheFileWithinTheRefreshInterval(t *testing.T) {
	s := newStack(t)
	r, c, tmpl, next := s.startOnAgentKey(t, "sigsci-agent.service")
	if got := hosttest.ReadFile(t, tmpl.Destination); got != "access_key = \"key-v1\"\n" {
		t.Fatalf("file holds %q", got)
	}
	if info, _ := os.Stat(tmpl.Destination); info.Mode().Perm() != 0o640 {
		t.Fatalf("mode %#o, want 0640", info.Mode().Perm())
	}
	if b := c.next(t, 5*time.Second); len(b) != 1 || b[0] != (Change{Unit: "sigsci-agent.service", Destination: tmpl.Destination}) {
		t.Fatalf("first batch %+v, want the new file without backup", b)
	}

	written := time.Now()
	s.writeSecret(t, "agent", "key-v2")
	ev, _ := s.events.WaitFor(t, next, refresh+5*time.Second, "render of the changed secret", renderOf(tmpl.Destination, changed))
	t.Logf("secret change to file on disk: %s (refresh interval %s)", ev.(event.Render).Time.Sub(written).Round(time.Millisecond), refresh)
	if got := hosttest.ReadFile(t, tmpl.Destination); got != "access_key = \"key-v2\"\n" {
		t.Fatalf("file holds %q after the change", got)
	}
	if got := hosttest.ReadFile(t, tmpl.Destination+".bak"); got != "access_key = \"key-v1\"\n" {
		t.Fatalf("backup holds %q", got)
	}
	b := c.next(t, 5*time.Second)
	if len(b) != 1 || b[0].Unit != "sigsci-agent.service" || b[0].Destination != tmpl.Destination ||
		b[0].Previous == nil || string(b[0].Previous.Content()) != "access_key = \"key-v1\"\n" {
		t.Fatalf("batch %+v (previous contents %q), want the change of %s with the previous content", b, previousContents(b), tmpl.Destination)
	}
	if r.Starts() != 1 {
		t.Fatalf("%d runner starts, want 1", r.Starts())
	}
}

func TestRevokedTokenIsReplacedWithoutANewRunner(t *testing.T) {
	s := newStack(t)
	r, _, tmpl, next := s.startOnAgentKey(t, "")

	old := s.auth.Token()
	if err := s.vault.Client().Auth().Token().RevokeOrphan(old); err != nil {
		t.Fatal(err)
	}
	s.writeSecret(t, "agent", "key-v2")

	// The next read gets "invalid token"; the proxy tells auth, auth logs in
	// again, consul-template's retry goes through with the new token.
	_, n := s.events.WaitFor(t, next, refresh+5*time.Second, "token rejection", func(e event.Event) bool {
		a, ok := e.(event.Auth)
		return ok && !a.OK && strings.Contains(a.Err, "rejected")
	})
	s.events.WaitFor(t, n, 10*time.Second, "render with the new token", renderOf(tmpl.Destination, changed))
	if got := hosttest.ReadFile(t, tmpl.Destination); got != "access_key = \"key-v2\"\n" {
		t.Fatalf("file holds %q", got)
	}
	if s.auth.Token() == old {
		t.Fatal("auth still holds the revoked token")
	}
	s.tokens = append(s.tokens, old)
	if r.Starts() != 1 {
		t.Fatalf("%d runner starts, want 1: the token must be swapped in place", r.Starts())
	}
}

func TestTemplateThatCannotRenderKeepsItsOldFile(t *testing.T) {
	s := newStack(t)
	s.writeSecret(t, "agent", "key-v1")
	c := newChanges()
	good := keyTemplate(s.dir, "agent", "")
	missingKey := Template{
		Contents:          `{{ with secret "secret/data/agent" }}{{ .Data.data.no_such_key }}{{ end }}`,
		Destination:       filepath.Join(s.dir, "missing-key.conf"),
		ErrorOnMissingKey: true,
	}
	syntax := Template{
		Contents:    `{{ with secret "secret/data/agent" }}{{ .Data.data.access_key `,
		Destination: filepath.Join(s.dir, "syntax.conf"),
	}
	denied := Template{
		Contents:    `{{ plugin "/bin/sh" "-c" "id" }}`,
		Destination: filepath.Join(s.dir, "denied.conf"),
	}
	broken := []Template{missingKey, syntax, denied}
	for _, tmpl := range broken {
		os.WriteFile(tmpl.Destination, []byte("old working content\n"), 0o600)
	}
	s.start(t, c, good, missingKey, syntax, denied)

	s.events.WaitFor(t, 0, 15*time.Second, "good template rendered", renderOf(good.Destination, changed))
	ev, _ := s.events.WaitFor(t, 0, 15*time.Second, "missing-key error", renderOf(missingKey.Destination, failed))
	if !strings.Contains(ev.(event.Render).Err, "no_such_key") {
		t.Fatalf("error %q does not name the missing key", ev.(event.Render).Err)
	}
	s.events.WaitFor(t, 0, 15*time.Second, "syntax error", renderOf(syntax.Destination, failed))
	s.events.WaitFor(t, 0, 15*time.Second, "denied function error", renderOf(denied.Destination, failed))

	// A later change still reaches the good file; the broken ones stay.
	_, next := s.events.WaitFor(t, 0, time.Second, "", renderOf(good.Destination, changed))
	s.writeSecret(t, "agent", "key-v2")
	s.events.WaitFor(t, next, refresh+5*time.Second, "good template re-rendered", renderOf(good.Destination, changed))
	for _, tmpl := range broken {
		if got := hosttest.ReadFile(t, tmpl.Destination); got != "old working content\n" {
			t.Fatalf("%s holds %q, want the old content", filepath.Base(tmpl.Destination), got)
		}
	}
}

func TestVaultOutageKeepsFilesAndRecovers(t *testing.T) {
	s := newStack(t)
	r, c, tmpl, next := s.startOnAgentKey(t, "sigsci-agent.service")
	c.next(t, 5*time.Second)
	before, _ := os.Stat(tmpl.Destination)

	s.vault.Pause()
	failedRequest := func(e event.Event) bool {
		v, ok := e.(event.VaultRequest)
		return ok && (v.StatusCode == 0 || v.StatusCode >= 500)
	}
	_, n := s.events.WaitFor(t, next, refresh+5*time.Second, "failed Vault request", failedRequest)
	s.events.WaitFor(t, n, 10*time.Second, "second failed Vault request", failedRequest)
	after, _ := os.Stat(tmpl.Destination)
	if got := hosttest.ReadFile(t, tmpl.Destination); got != "access_key = \"key-v1\"\n" || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the file changed during the outage: %q", got)
	}
	for _, e := range s.events.All()[next:] {
		if r, ok := e.(event.Render); ok && r.Template == tmpl.Destination && r.Changed {
			t.Fatalf("render during the outage: %+v", r)
		}
	}
	c.none(t)

	s.vault.Resume()
	mark := s.events.Len()
	s.writeSecret(t, "agent", "key-v2")
	s.events.WaitFor(t, mark, refresh+15*time.Second, "render after Vault came back", renderOf(tmpl.Destination, changed))
	if got := hosttest.ReadFile(t, tmpl.Destination); got != "access_key = \"key-v2\"\n" {
		t.Fatalf("file holds %q after recovery", got)
	}
	if b := c.next(t, 5*time.Second); len(b) != 1 {
		t.Fatalf("batch %+v after recovery", b)
	}
	t.Logf("runner starts: %d", r.Starts())
}

func TestUnitIsReportedOnlyAfterAllItsTemplatesRendered(t *testing.T) {
	s := newStack(t)
	s.writeSecret(t, "first", "a1")
	c := newChanges()
	first := keyTemplate(s.dir, "first", "sigsci-agent.service")
	second := keyTemplate(s.dir, "second", "sigsci-agent.service") // its secret does not exist yet
	other := keyTemplate(s.dir, "other", "other.service")
	s.writeSecret(t, "other", "o1")
	const installed = "what the unit runs on\n"
	if err := os.WriteFile(first.Destination, []byte(installed), 0o640); err != nil {
		t.Fatal(err)
	}
	s.start(t, c, first, second, other)

	_, next := s.events.WaitFor(t, 0, 15*time.Second, "first template rendered", renderOf(first.Destination, changed))
	s.events.WaitFor(t, 0, 15*time.Second, "other unit rendered", renderOf(other.Destination, changed))
	b := c.next(t, 5*time.Second)
	if len(b) != 1 || b[0].Unit != "other.service" {
		t.Fatalf("batch %+v, want only other.service: sigsci-agent.service still misses a template", b)
	}
	c.none(t)

	// The first file changes again while the unit still waits: the batch
	// must carry what the unit ran on, not the in-between render.
	s.writeSecret(t, "first", "a2")
	s.events.WaitFor(t, next, refresh+15*time.Second, "first template rendered again", renderOf(first.Destination, changed))
	mark := s.events.Len()
	s.writeSecret(t, "second", "b1")
	s.events.WaitFor(t, mark, refresh+15*time.Second, "second template rendered", renderOf(second.Destination, changed))
	b = c.next(t, 5*time.Second)
	if len(b) != 2 || b[0].Destination != first.Destination || b[1].Destination != second.Destination {
		t.Fatalf("batch %+v, want both files of sigsci-agent.service together", b)
	}
	if b[0].Previous == nil || string(b[0].Previous.Content()) != installed || b[1].Previous != nil {
		t.Fatalf("previous contents %q: want %q for the first file and none for the new second", previousContents(b), installed)
	}
}

func TestFailingRunnerIsRestartedWithBackoffAndLeaksNothing(t *testing.T) {
	s := newStack(t)
	s.writeSecret(t, "agent", "key-v1")
	extra := filepath.Join(s.dir, "extra.txt") // missing: consul-template's file() fails the runner
	tmpl := Template{
		Contents:    `{{ file "` + extra + `" }} {{ with secret "secret/data/agent" }}{{ .Data.data.access_key }}{{ end }}`,
		Destination: filepath.Join(s.dir, "with-file.conf"),
	}
	c := newChanges()
	baseline := runtime.NumGoroutine()
	r, err := New(Options{
		Templates: []Template{tmpl}, Dialer: s.proxy, RefreshInterval: refresh,
		MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second,
		OnChange: c.onChange, Reporting: stage.Reporting{Sink: s.events}, Clock: stage.Clock{Rand: func() float64 { return 0 }},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer cancel()

	var failures []event.Render
	next := 0
	for len(failures) < 4 {
		var e event.Event
		e, next = s.events.WaitFor(t, next, 10*time.Second, "runner failure", renderOf(tmpl.Destination, failed))
		failures = append(failures, e.(event.Render))
	}
	for i := 1; i < len(failures); i++ {
		gap := failures[i].Time.Sub(failures[i-1].Time)
		floor := backoff.Delay(i, 200*time.Millisecond, time.Second, func() float64 { return 0 })
		if gap < floor {
			t.Fatalf("runner %d failed %s after the previous one, want at least the %s backoff", i+1, gap, floor)
		}
	}
	goroutinesWhileFailing := runtime.NumGoroutine()

	if err := os.WriteFile(extra, []byte("extra"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.events.WaitFor(t, next, 10*time.Second, "render once the file exists", renderOf(tmpl.Destination, changed))
	if got := hosttest.ReadFile(t, tmpl.Destination); got != "extra key-v1" {
		t.Fatalf("file holds %q", got)
	}
	starts := r.Starts()
	if starts < 5 {
		t.Fatalf("%d runner starts, want one per failure plus the good one", starts)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// Every runner's goroutines are gone: the count returns to where it was
	// before the first runner, whatever the number of restarts. Allowed on
	// top: consul-template's file() watcher of the last runner, which only
	// ends when the file changes (a consul-template v0.42.1 leak, one per
	// runner that read an existing file).
	s.upstream.CloseIdleConnections()
	func() {
		defer func() { // only when the wait fails: a dump stops the world
			if t.Failed() {
				buf := make([]byte, 1<<20)
				t.Logf("goroutines left:\n%s", buf[:runtime.Stack(buf, true)])
			}
		}()
		poll.Within(t, 15*time.Second, 50*time.Millisecond, "the runners' goroutines to end", func() (bool, string) {
			n := runtime.NumGoroutine()
			return n <= baseline+1, fmt.Sprintf("%d goroutines after Run returned, %d before it started (%d while failing)", n, baseline, goroutinesWhileFailing)
		})
	}()
	t.Logf("goroutines: %d before, %d while failing, %d after (%d runner starts)", baseline, goroutinesWhileFailing, runtime.NumGoroutine(), starts)
}

func TestStaticTemplateRendersWithoutVault(t *testing.T) {
	p, err := vaultproxy.New(vaultproxy.Options{Upstream: "http://127.0.0.1:1", Tokens: fixedToken("")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir := t.TempDir()
	dest := filepath.Join(dir, "static.conf")
	c := newChanges()
	events := eventtest.New[event.Event]()
	r, err := New(Options{
		Templates: []Template{{Contents: "listen = {{ \"127.0.0.1\" }}\n", Destination: dest, Perms: 0o600, Unit: "u.service"}},
		Dialer:    p, RefreshInterval: refresh, OnChange: c.onChange, Reporting: stage.Reporting{Sink: events},
	})
	if err != nil {
		t.Fatal(err)
	}
	runtest.UntilEnd(t, 15*time.Second, context.Canceled, r.Run)
	b := c.next(t, 10*time.Second)
	if len(b) != 1 || b[0] != (Change{Unit: "u.service", Destination: dest}) {
		t.Fatalf("batch %+v", b)
	}
	if got := hosttest.ReadFile(t, dest); got != "listen = 127.0.0.1\n" {
		t.Fatalf("file holds %q", got)
	}
}

// TestPanicInConsulTemplateBecomesARunnerFailure: consul-template v0.42.1
// crashes when a template that failed on a runner's first pass is evaluated
// again. New leaves such templates out, but one can still slip through when
// its failure depends on the environment; the daemon must survive it.
func TestPanicInConsulTemplateBecomesARunnerFailure(t *testing.T) {
	p, err := vaultproxy.New(vaultproxy.Options{Upstream: "http://127.0.0.1:1", Tokens: fixedToken("")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir := t.TempDir()
	input := filepath.Join(dir, "input.txt")
	os.WriteFile(input, []byte("hello"), 0o600)
	fromFile := Template{Contents: `{{ file "` + input + `" }}`, Destination: filepath.Join(dir, "from-file.conf")}
	flaky := Template{
		Contents:    `{{ if eq (env "HOSTD_RENDER_TEST_BREAK") "1" }}{{ parseInt "x" }}{{ end }}ok`,
		Destination: filepath.Join(dir, "flaky.conf"),
	}
	events := eventtest.New[event.Event]()
	r, err := New(Options{
		Templates: []Template{fromFile, flaky}, Dialer: p, RefreshInterval: refresh,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, Reporting: stage.Reporting{Sink: events},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOSTD_RENDER_TEST_BREAK", "1") // after New's check, before the runner
	runtest.UntilEnd(t, 15*time.Second, context.Canceled, r.Run)

	ev, next := events.WaitFor(t, 0, 10*time.Second, "runner failure from the panic", renderOf(flaky.Destination, func(r event.Render) bool {
		return strings.Contains(r.Err, "panicked")
	}))
	t.Log(ev.(event.Render).Err)
	events.WaitFor(t, next, 10*time.Second, "a second failure after backoff", renderOf(flaky.Destination, func(r event.Render) bool {
		return strings.Contains(r.Err, "panicked")
	}))
	if got := hosttest.ReadFile(t, fromFile.Destination); got != "hello" {
		t.Fatalf("the healthy template was not rendered: %q", got)
	}

	os.Setenv("HOSTD_RENDER_TEST_BREAK", "0")
	mark := events.Len()
	events.WaitFor(t, mark, 10*time.Second, "flaky template rendered once fixed", renderOf(flaky.Destination, changed))
	if got := hosttest.ReadFile(t, flaky.Destination); got != "ok" {
		t.Fatalf("flaky.conf holds %q", got)
	}
}

type fixedToken string

func (f fixedToken) Token() string { return string(f) }

func TestNewRejectsBadTemplates(t *testing.T) {
	p, err := vaultproxy.New(vaultproxy.Options{Upstream: "http://127.0.0.1:1", Tokens: fixedToken("")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for name, tmpls := range map[string][]Template{
		"none":           {},
		"no destination": {{Contents: "x"}},
		"no contents":    {{Destination: "/d"}},
		"duplicate":      {{Contents: "x", Destination: "/d"}, {Contents: "y", Destination: "/d"}},
		"setuid":         {{Contents: "x", Destination: "/d", Perms: 0o4700}},
	} {
		if _, err := New(Options{Templates: tmpls, Dialer: p}); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := New(Options{Templates: []Template{{Contents: "x", Destination: "/d"}}}); err == nil {
		t.Error("New without a dialer succeeded")
	}
	t.Setenv("VAULT_AGENT_ADDR", "unix:///run/agent.sock")
	if _, err := New(Options{Templates: []Template{{Contents: "x", Destination: "/d"}}, Dialer: p}); err == nil {
		t.Error("New succeeded with VAULT_AGENT_ADDR set")
	}
}

func TestConsulTemplateConfigIgnoresTheEnvironment(t *testing.T) {
	t.Setenv("VAULT_ADDR", "https://elsewhere:8200")
	t.Setenv("VAULT_TOKEN", "hvs.fromtheenvironmentxxxxxxxx")
	t.Setenv("VAULT_NAMESPACE", "env-ns")
	t.Setenv("VAULT_CACERT", "/env/ca.pem")
	t.Setenv("VAULT_RENEW_TOKEN", "true")
	t.Setenv("CONSUL_HTTP_TOKEN", "consul-token-from-env")
	t.Setenv("CONSUL_HTTP_AUTH", "user:consul-password-from-env")
	t.Setenv("NOMAD_TOKEN", "nomad-token-from-env")
	p, err := vaultproxy.New(vaultproxy.Options{Upstream: "http://127.0.0.1:1", Tokens: fixedToken("")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := New(Options{Templates: []Template{{Contents: "x", Destination: "/d"}}, Dialer: p})
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.consulTemplateConfig()
	// consul-template logs this JSON at debug level when a runner starts.
	logged, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"fromtheenvironment", "consul-token-from-env", "consul-password-from-env", "nomad-token-from-env", "elsewhere", "env-ns"} {
		if bytes.Contains(logged, []byte(secret)) {
			t.Errorf("consul-template's config picked up %q from the environment: %s", secret, logged)
		}
	}
	v := cfg.Vault
	for name, got := range map[string]any{
		"address":   *v.Address,
		"token":     *v.Token,
		"namespace": *v.Namespace,
		"ca cert":   *v.SSL.CaCert,
		"renew":     *v.RenewToken,
		"ssl":       *v.SSL.Enabled,
		"dialer":    v.Transport.CustomDialer == Dialer(p),
	} {
		want := map[string]any{
			"address": vaultproxy.Address, "token": placeholderToken, "namespace": "", "ca cert": "",
			"renew": false, "ssl": false, "dialer": true,
		}[name]
		if got != want {
			t.Errorf("vault %s = %v, want %v", name, got, want)
		}
	}
}

func TestLogWriterDropsTokenLinesAndTrace(t *testing.T) {
	var out bytes.Buffer
	w := LogWriter(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	io.WriteString(w, "[INFO] (runner) creating new runner\n")
	io.WriteString(w, "[TRACE] (view) vault.read(secret/data/agent) starting fetch\n")
	io.WriteString(w, "[DEBUG] token hvs.CAESIJ2x9v6kN1aQeR8Zy0s renewed\n")
	io.WriteString(w, "[WARN] legacy token s.abcdefghijklmnopqrstuvwx in use\n")
	io.WriteString(w, "[DEBUG] header X-Vault-Token: whatever\n")
	io.WriteString(w, "[WARN] legacy token b.ZYXWVUTSRQPONMLKJIHGFEDCBA98 is longer than 24\n")
	io.WriteString(w, "[ERR] (view) vault.read(secret/data/agent): permission denied (retry attempt 1 after \"250ms\")\n[DEB")
	io.WriteString(w, "UG] split line\n")

	got := out.String()
	for _, leaked := range []string{"hvs.", "s.abcdef", "b.ZYXW", "X-Vault-Token", "starting fetch"} {
		if strings.Contains(got, leaked) {
			t.Errorf("output contains %q:\n%s", leaked, got)
		}
	}
	for _, kept := range []string{"creating new runner", "permission denied", "split line", "level=DEBUG", "ct_level=err"} {
		if !strings.Contains(got, kept) {
			t.Errorf("output lacks %q:\n%s", kept, got)
		}
	}
}

func TestValidateNamesEveryBrokenTemplate(t *testing.T) {
	err := Validate([]Template{
		{Contents: `{{ with secret "a" }}{{ .Data.x }}{{ end }}`, Destination: "/ok"},
		{Contents: `{{ if }}`, Destination: "/syntax"},
		{Contents: `{{ key "consul/path" }}`, Destination: "/consul"},
		{Contents: `{{ plugin "/bin/sh" "-c" "id" }}`, Destination: "/plugin"},
	})
	if err == nil {
		t.Fatal("Validate accepted broken templates")
	}
	t.Log(err)
	for _, dest := range []string{"/syntax", "/consul", "/plugin"} {
		if !strings.Contains(err.Error(), "("+dest+")") {
			t.Errorf("error does not name %s", dest)
		}
	}
	if strings.Contains(err.Error(), "(/ok)") {
		t.Error("the valid template was reported")
	}
}

func TestRedactKeepsTemplateTextAndHidesData(t *testing.T) {
	contents := `{{ with secret "sigsci/creds/x" }}{{ parseInt .Data.secretKey }}{{ end }}`
	msg := `template: :1:40: executing "" at <parseInt .Data.secretKey>: error calling parseInt: strconv.ParseInt: parsing "s3cr3t-value": invalid syntax; path "sigsci/creds/x"`
	got := redact(msg, contents)
	if strings.Contains(got, "s3cr3t-value") {
		t.Fatalf("secret value kept: %s", got)
	}
	if !strings.Contains(got, `"sigsci/creds/x"`) || !strings.Contains(got, `executing ""`) {
		t.Fatalf("template text lost: %s", got)
	}
}

func TestRefreshReadsSecretsAgainAtOnce(t *testing.T) {
	// An hour: only Refresh can explain a second read within the test.
	s := newStackReadingEvery(t, time.Hour)
	r, _, tmpl, next := s.startOnAgentKey(t, "")

	s.writeSecret(t, "agent", "key-v2")
	r.Refresh()
	s.events.WaitFor(t, next, 15*time.Second, "render after Refresh", renderOf(tmpl.Destination, changed))
	if got := hosttest.ReadFile(t, tmpl.Destination); got != "access_key = \"key-v2\"\n" {
		t.Fatalf("file holds %q after Refresh", got)
	}
	if r.Starts() != 2 {
		t.Fatalf("%d runner starts, want 2: the first and the refresh", r.Starts())
	}
	if strings.Contains(s.logs.String(), "restarting consul-template runner after backoff") {
		t.Fatalf("a refresh was treated as a runner failure:\n%s", s.logs.String())
	}
}

// previousContents lists what each change's file held before it ("<none>"
// without a previous file), for a failure message: a Snapshot formats as
// its size and mode alone.
func previousContents(batch []Change) []string {
	out := make([]string, len(batch))
	for i, c := range batch {
		out[i] = "<none>"
		if c.Previous != nil {
			out[i] = string(c.Previous.Content())
		}
	}
	return out
}
