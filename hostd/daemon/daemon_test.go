package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
)

// These tests run the daemon without Vault: the address refuses
// connections, so hostd keeps trying to log in while its own machinery
// (status socket, reload, sd_notify) is exercised for real.

const waitFor = 10 * time.Second

// recorder is a Notifier that keeps every state sent.
type recorder struct {
	watchdog time.Duration
	mu       sync.Mutex
	states   []string
	changed  chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) Notify(state string) error {
	r.mu.Lock()
	r.states = append(r.states, state)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) WatchdogInterval() time.Duration { return r.watchdog }

// count returns how many notifications start with prefix.
func (r *recorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.states {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// waitCount waits until at least n notifications start with prefix.
func (r *recorder) waitCount(t *testing.T, prefix string, n int) {
	t.Helper()
	deadline := time.After(waitFor)
	for r.count(prefix) < n {
		select {
		case <-r.changed:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("no %d× %q notification; got %q", n, prefix, r.states)
		}
	}
}

type harness struct {
	t      *testing.T
	dir    string
	path   string
	socket string
	notes  *recorder
	logs   *logbuf.Buffer
	level  *slog.LevelVar
	reload chan struct{}
	cancel context.CancelFunc
	done   chan error
}

// testConfig says how a test's configuration differs from the usual one:
// no Vault behind it, a token file, socket mode 0600, log level info,
// metrics on a free port, and a template of "x" per destination (a name in
// Dir).
type testConfig struct {
	Dir, Socket  string
	Destinations []string
	SocketMode   string // "" for 0600
	Level        string // "" for info
	Metrics      string // "" for 127.0.0.1:0
	NoMetrics    bool   // listen_address = ""
}

func configText(c testConfig) string {
	cfg := hosttest.Config{
		VaultAddress:    "http://127.0.0.1:1",
		TokenFile:       filepath.Join(c.Dir, "token"),
		Socket:          c.Socket,
		SocketMode:      cmp.Or(c.SocketMode, "0600"),
		LogLevel:        cmp.Or(c.Level, "info"),
		TelemetryListen: cmp.Or(c.Metrics, "127.0.0.1:0"),
	}
	if c.NoMetrics {
		cfg.TelemetryListen = ""
	}
	for _, d := range c.Destinations {
		cfg.Templates = append(cfg.Templates, hosttest.Template{Contents: "x", Destination: filepath.Join(c.Dir, d)})
	}
	return cfg.Text()
}

// start writes a configuration and runs the daemon with it.
func start(t *testing.T, text func(dir, socket string) string) *harness {
	t.Helper()
	return startWith(t, newRecorder(), text)
}

func startWith(t *testing.T, notes *recorder, text func(dir, socket string) string, opts ...Option) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, path: filepath.Join(dir, "hostd.hcl"), socket: filepath.Join(dir, "hostd.sock"),
		notes: notes, logs: &logbuf.Buffer{}, reload: make(chan struct{}), done: make(chan error, 1)}
	cfg := loadConfig(t, dir, text(dir, h.socket))
	logger, level := NewLogger(h.logs, cfg.Log)
	h.level = level
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.done <- Run(ctx, cfg, logger, "9.9.9", h.reload, append([]Option{WithLogLevel(level), WithNotifier(h.notes)}, opts...)...)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(waitFor):
			t.Error("daemon did not stop")
		}
	})
	return h
}

// loadConfig writes text to dir/hostd.hcl, with the token file it names
// beside it, and loads it.
func loadConfig(t *testing.T, dir, text string) *config.Config {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("not-a-real-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hostd.hcl")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runToStartFailure runs the daemon on the configuration in dir, which must
// fail to start, and returns why.
func runToStartFailure(t *testing.T, dir string, c testConfig) error {
	t.Helper()
	cfg := loadConfig(t, dir, configText(c))
	logger, _ := NewLogger(&logbuf.Buffer{}, cfg.Log)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := Run(ctx, cfg, logger, "test", make(chan struct{}), WithNotifier(newRecorder()))
	if ctx.Err() != nil {
		t.Fatal("Run did not return promptly")
	}
	return err
}

func (h *harness) write(text string) {
	h.t.Helper()
	if err := os.WriteFile(h.path, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// reloadDone is the prefix of the STATUS line that ends every reload.
const reloadDone = "STATUS=configuration reload"

// triggerReload asks for a reload and waits until it is finished.
func (h *harness) triggerReload() {
	h.t.Helper()
	before := h.notes.count(reloadDone)
	select {
	case h.reload <- struct{}{}:
	case <-time.After(waitFor):
		h.t.Fatal("daemon does not take reload requests")
	}
	h.notes.waitCount(h.t, reloadDone, before+1)
}

func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		return err
	case <-time.After(waitFor):
		h.t.Fatal("daemon did not stop")
		return nil
	}
}

// waitReady waits until the daemon has sent READY=1: every part is up. The
// status socket answers before that, and the metrics endpoint is bound
// after it, so a test that scrapes the endpoint waits for this.
func (h *harness) waitReady() {
	h.t.Helper()
	h.notes.waitCount(h.t, notifyReady, 1)
}

// fetch waits until the status socket at path answers.
func fetch(t *testing.T, path string) status.Snapshot {
	t.Helper()
	return hosttest.WaitStatus(t, path, "any answer", func(status.Snapshot) bool { return true })
}

func TestRunServesStatusAndStopsCleanly(t *testing.T) {
	h := start(t, func(dir, socket string) string {
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"agent.conf"}})
	})
	snap := fetch(t, h.socket)
	if snap.Version != "9.9.9" || snap.Auth.Method != "token_file" || len(snap.Templates) != 1 {
		t.Errorf("snapshot = %+v", snap)
	}
	if healthy, _ := status.Healthy(snap); healthy {
		t.Error("a daemon that cannot reach Vault must not look healthy")
	}
	info, err := os.Lstat(h.socket)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v, %v", info, err)
	}
	// Ready although Vault does not answer: running is what READY means.
	h.notes.waitCount(t, notifyReady, 1)

	if err := h.stop(); err != nil {
		t.Fatalf("Run returned %v on a requested stop", err)
	}
	if h.notes.count(notifyStopping) != 1 {
		t.Errorf("STOPPING=1 sent %d times", h.notes.count(notifyStopping))
	}
	if _, err := os.Lstat(h.socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestRunWithoutTemplatesIsReadyAtOnce(t *testing.T) {
	h := start(t, func(dir, socket string) string { return configText(testConfig{Dir: dir, Socket: socket}) })
	h.notes.waitCount(t, notifyReady, 1)
	// hostd refresh has nothing to do and says so.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := status.AskRefresh(ctx, h.socket); err == nil || !strings.Contains(err.Error(), "nothing to refresh") {
		t.Errorf("refresh without templates = %v, want a refusal that says why", err)
	}
}

func TestReloadOnceReadyIsAnnouncedToSystemd(t *testing.T) {
	h := start(t, func(dir, socket string) string { return configText(testConfig{Dir: dir, Socket: socket}) })
	h.notes.waitCount(t, notifyReady, 1)
	h.triggerReload()
	h.notes.waitCount(t, notifyReady, 2)
	h.notes.mu.Lock()
	defer h.notes.mu.Unlock()
	var reloading string
	for _, s := range h.notes.states {
		if strings.HasPrefix(s, notifyReloading) {
			reloading = s
		}
	}
	if !strings.Contains(reloading, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 must carry MONOTONIC_USEC for Type=notify-reload, got %q", reloading)
	}
}

func TestWatchdogIsPetted(t *testing.T) {
	notes := newRecorder()
	notes.watchdog = 40 * time.Millisecond
	h := startWith(t, notes, func(dir, socket string) string {
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"a.conf"}})
	})
	h.notes.waitCount(t, notifyWatchdog, 5)
}

func TestReloadWithProblemsKeepsTheRunningConfiguration(t *testing.T) {
	h := start(t, func(dir, socket string) string {
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"agent.conf"}})
	})
	fetch(t, h.socket)
	h.write(configText(testConfig{Dir: h.dir, Socket: h.socket, Destinations: []string{"agent.conf"}}) + "restart {\n  splay = \"soon\"\n}\n")
	h.triggerReload()

	logs := h.logs.String()
	if !strings.Contains(logs, "configuration reload rejected: "+h.path+":") || !strings.Contains(logs, "splay") {
		t.Errorf("the problem (file:line) must be logged:\n%s", logs)
	}
	if !strings.Contains(logs, "still running the previous configuration") {
		t.Errorf("logs must say the old configuration stays:\n%s", logs)
	}
	// systemd leaves "reloading" at the READY=1 that ends every reload,
	// the rejected one too.
	h.notes.waitCount(t, notifyReady, 2)
	if n := h.notes.count(notifyReloading); n != 1 {
		t.Errorf("RELOADING=1 sent %d times, want once", n)
	}
	if snap := fetch(t, h.socket); len(snap.Templates) != 1 {
		t.Errorf("status changed after a rejected reload: %+v", snap.Templates)
	}
	if err := h.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestReloadWithABrokenTemplateKeepsTheRunningConfiguration(t *testing.T) {
	h := start(t, func(dir, socket string) string {
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"agent.conf"}})
	})
	fetch(t, h.socket)
	h.write(configText(testConfig{Dir: h.dir, Socket: h.socket}) + fmt.Sprintf("template {\n  contents = \"{{ if }}\"\n  destination = %q\n}\n", filepath.Join(h.dir, "new.conf")))
	h.triggerReload()
	logs := h.logs.String()
	if !strings.Contains(logs, "configuration reload rejected: template 1") || !strings.Contains(logs, "still running the previous configuration") {
		t.Errorf("a template that cannot render must reject the reload:\n%s", logs)
	}
	if snap := fetch(t, h.socket); len(snap.Templates) != 1 || !strings.HasSuffix(snap.Templates[0].Destination, "agent.conf") {
		t.Errorf("templates after a rejected reload: %+v", snap.Templates)
	}
}

func TestReloadAppliesANewConfiguration(t *testing.T) {
	h := start(t, func(dir, socket string) string {
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"agent.conf"}})
	})
	fetch(t, h.socket)
	if h.level.Level() != slog.LevelInfo {
		t.Fatalf("level = %v", h.level.Level())
	}

	newSocket := filepath.Join(h.dir, "new.sock")
	h.write(configText(testConfig{Dir: h.dir, Socket: newSocket, Destinations: []string{"agent.conf", "extra.conf"}, Level: "debug"}))
	h.triggerReload()

	if h.level.Level() != slog.LevelDebug {
		t.Errorf("log level after reload = %v, want debug", h.level.Level())
	}
	snap := fetch(t, newSocket)
	if len(snap.Templates) != 2 || snap.Templates[1].Destination != filepath.Join(h.dir, "extra.conf") {
		t.Errorf("templates after reload = %+v", snap.Templates)
	}
	if _, err := os.Lstat(h.socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old socket still there after moving it: %v", err)
	}
	if !strings.Contains(h.logs.String(), "pipeline restarted with the new configuration") {
		t.Errorf("a template change must rebuild the pipeline:\n%s", h.logs.String())
	}

	// The same file again changes nothing.
	h.triggerReload()
	if !strings.Contains(h.logs.String(), "configuration unchanged") {
		t.Errorf("an unchanged file must be reported as such:\n%s", h.logs.String())
	}
}

func TestReloadChangingTheSocketModeReopensIt(t *testing.T) {
	h := start(t, func(dir, socket string) string {
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"agent.conf"}})
	})
	fetch(t, h.socket)
	h.write(configText(testConfig{Dir: h.dir, Socket: h.socket, Destinations: []string{"agent.conf"}, SocketMode: "0660"}))
	h.triggerReload()
	info, err := os.Lstat(h.socket)
	if err != nil || info.Mode().Perm() != 0o660 {
		t.Fatalf("socket after reload: %v, %v", info, err)
	}
	fetch(t, h.socket)
}

func TestRunFailsWhenTheStatusSocketCannotBeCreated(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "hostd.sock")
	if err := os.WriteFile(socket, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runToStartFailure(t, dir, testConfig{Dir: dir, Socket: socket})
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Run = %v, want the socket error", err)
	}
}

// freeAddress returns a loopback address with a port nobody listens on now.
func freeAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func getMetrics(t *testing.T, addr string) (string, error) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestMetricsEndpointFollowsReload(t *testing.T) {
	first, second := freeAddress(t), freeAddress(t)
	h := start(t, func(dir, socket string) string {
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"agent.conf"}, Metrics: first})
	})
	h.waitReady()
	body, err := getMetrics(t, first)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`hostd_build_info{goversion="`, `version="9.9.9"} 1`, "hostd_authenticated 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	h.write(configText(testConfig{Dir: h.dir, Socket: h.socket, Destinations: []string{"agent.conf"}, Metrics: second}))
	h.triggerReload()
	if _, err := getMetrics(t, second); err != nil {
		t.Errorf("new address does not serve metrics: %v", err)
	}
	if _, err := getMetrics(t, first); err == nil {
		t.Error("old address still serves metrics after the reload")
	}

	h.write(configText(testConfig{Dir: h.dir, Socket: h.socket, Destinations: []string{"agent.conf"}, NoMetrics: true}))
	h.triggerReload()
	if _, err := getMetrics(t, second); err == nil {
		t.Error(`listen_address = "" must turn the endpoint off`)
	}
}

func TestRunFailsWhenTheMetricsPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	socket := filepath.Join(dir, "hostd.sock")
	err = runToStartFailure(t, dir, testConfig{Dir: dir, Socket: socket, Metrics: taken.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run = %v, want the port error", err)
	}
	if _, err := os.Lstat(socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the status socket must be removed when start-up fails: %v", err)
	}
}

// An edited template source file is a new configuration for SIGHUP, as the
// packaged flow says (edit agent.ctmpl, systemctl reload hostd).
func TestReloadAppliesAnEditedTemplateSource(t *testing.T) {
	var source string
	h := start(t, func(dir, socket string) string {
		source = filepath.Join(dir, "agent.ctmpl")
		if err := os.WriteFile(source, []byte("version 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return configText(testConfig{Dir: dir, Socket: socket}) + fmt.Sprintf("template {\n  source = %q\n  destination = %q\n}\n", source, filepath.Join(dir, "agent.conf"))
	})
	fetch(t, h.socket)

	h.triggerReload()
	if !strings.Contains(h.logs.String(), "configuration unchanged") {
		t.Fatalf("a reload with nothing edited must change nothing:\n%s", h.logs.String())
	}
	if err := os.WriteFile(source, []byte("version 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.triggerReload()
	if n := strings.Count(h.logs.String(), "pipeline restarted with the new configuration"); n != 1 {
		t.Fatalf("an edited template source must rebuild the pipeline once, saw %d:\n%s", n, h.logs.String())
	}
}
