package status

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
)

func socketPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "hostd.sock")
}

// serve starts a status server for st on path and stops it at test end.
func serve(t *testing.T, path string, mode os.FileMode, st *State) {
	t.Helper()
	serveWithRefresh(t, path, mode, st, nil)
}

func serveWithRefresh(t *testing.T, path string, mode os.FileMode, st *State, refresh func() error) {
	t.Helper()
	ln, err := Listen(t.Context(), path, mode)
	if err != nil {
		t.Fatal(err)
	}
	runtest.UntilEnd(t, 10*time.Second, nil, func(ctx context.Context) error {
		return Serve(ctx, ln, NewHandler(st, refresh))
	})
}

func TestServeAndFetch(t *testing.T) {
	path := socketPath(t)
	c := clocktest.New(t0)
	st := newTestState(c)
	st.Publish(event.Auth{Time: t0, Method: "approle", OK: true, TokenExpiry: t0.Add(time.Hour)})
	st.Publish(event.Render{Time: t0, Template: "/etc/sigsci/agent.conf", Err: "token " + canary})
	serve(t, path, 0o600, st)

	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Type() != fs.ModeSocket || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want socket with 0600", info.Mode())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := Fetch(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != "1.2.3" || !snap.Auth.Authenticated || len(snap.Templates) != 2 || snap.Templates[0].Errors != 1 {
		t.Errorf("fetched snapshot = %+v", snap)
	}
	if strings.Contains(snap.Templates[0].LastError, canary) {
		t.Errorf("token crossed the socket: %q", snap.Templates[0].LastError)
	}
}

func TestListenAppliesTheConfiguredMode(t *testing.T) {
	path := socketPath(t)
	ln, err := Listen(context.Background(), path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o660 {
		t.Errorf("mode = %v, want 0660", info.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the private directory used to create the socket must be gone, found %v", entries)
	}
}

func TestListenReplacesAStaleSocket(t *testing.T) {
	path := socketPath(t)
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close() // a crashed hostd leaves its socket behind

	serve(t, path, 0o600, newTestState(clocktest.New(t0)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Fetch(ctx, path); err != nil {
		t.Fatalf("fetch through the new socket: %v", err)
	}
}

func TestListenRefusesASocketInUse(t *testing.T) {
	path := socketPath(t)
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = Listen(context.Background(), path, 0o600)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("want an in-use error, got %v", err)
	}
	if conn, err := net.Dial("unix", path); err != nil {
		t.Errorf("the other process's socket must still work: %v", err)
	} else {
		conn.Close()
	}
}

func TestListenRefusesToReplaceAFile(t *testing.T) {
	path := socketPath(t)
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(context.Background(), path, 0o600)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("want a not-a-socket error, got %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Errorf("file was touched: %q, %v", b, err)
	}
}

func TestListenCreatesTheDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "hostd", "hostd.sock")
	ln, err := Listen(context.Background(), path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestCloseRemovesOnlyItsOwnSocket(t *testing.T) {
	path := socketPath(t)
	ln, err := Listen(context.Background(), path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind after Close: %v", err)
	}

	ln, err = Listen(context.Background(), path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// Something else takes the path over (a newer hostd after a restart).
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("newer"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "newer" {
		t.Errorf("Close removed a path it no longer owned: %q, %v", b, err)
	}
}

func TestFetchWithoutDaemon(t *testing.T) {
	path := socketPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Fetch(ctx, path)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("want a no-such-socket error naming the path, got %v", err)
	}
	if strings.Contains(err.Error(), "http://") {
		t.Errorf("error shows the internal URL: %v", err)
	}
}

func TestServeAnswersOnlyGetStatus(t *testing.T) {
	path := socketPath(t)
	serve(t, path, 0o600, newTestState(clocktest.New(t0)))
	client := unixClient(path)
	resp, err := client.Post("http://hostd"+Path, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST status = %d, want 405", resp.StatusCode)
	}
	resp, err = client.Get("http://hostd/v1/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unknown path status = %d, want 404", resp.StatusCode)
	}
}

func TestAskRefreshReachesTheDaemon(t *testing.T) {
	st := newTestState(clocktest.New(t0))
	var asked atomic.Int32
	path := socketPath(t)
	serveWithRefresh(t, path, 0o600, st, func() error { asked.Add(1); return nil })
	if err := AskRefresh(context.Background(), path); err != nil || asked.Load() != 1 {
		t.Fatalf("AskRefresh = %v, the daemon was asked %d times; want nil, 1", err, asked.Load())
	}

	refusing := socketPath(t)
	serveWithRefresh(t, refusing, 0o600, st, func() error { return errors.New("hostd renders no template: nothing to refresh") })
	if err := AskRefresh(context.Background(), refusing); err == nil || !strings.Contains(err.Error(), "nothing to refresh") {
		t.Fatalf("AskRefresh of a daemon that refuses = %v, want its reason", err)
	}

	without := socketPath(t)
	serve(t, without, 0o600, st)
	if err := AskRefresh(context.Background(), without); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("AskRefresh where refresh is not served = %v, want HTTP 404", err)
	}
}
