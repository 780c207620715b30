package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Path is the HTTP path the status server answers on.
const Path = "/v1/status"

// shutdownGrace bounds how long Serve waits for requests in flight.
const shutdownGrace = 2 * time.Second

// Listen creates the unix socket at path with the given mode. The socket is
// created in a private directory, given its mode, and then linked into
// place, so nobody can connect while it still has the default mode. A
// leftover socket no process listens on is removed; anything else at path (a
// live socket, a regular file) is an error and left alone. Closing the
// listener removes the socket if it is still the one Listen created.
func Listen(ctx context.Context, path string, mode os.FileMode) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := removeStale(ctx, path); err != nil {
		return nil, err
	}
	private, err := os.MkdirTemp(dir, ".hostd-")
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	defer os.RemoveAll(private)

	tmp := filepath.Join(private, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	info, err := placeSocket(tmp, path, mode)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &socketListener{UnixListener: ln, path: path, info: info}, nil
}

// placeSocket gives the socket at tmp its mode and links it to path without
// replacing anything that appeared there meanwhile.
func placeSocket(tmp, path string, mode os.FileMode) (fs.FileInfo, error) {
	if err := os.Chmod(tmp, mode.Perm()); err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	info, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	return info, nil
}

// removeStale removes a socket at path that nobody listens on.
func removeStale(ctx context.Context, path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("status socket: %w", err)
	}
	if info.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("status socket: %s exists and is not a socket; refusing to replace it", path)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
	if err == nil {
		conn.Close()
		return fmt.Errorf("status socket: %s is in use (is another hostd running?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("status socket: check %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("status socket: remove stale %s: %w", path, err)
	}
	return nil
}

type socketListener struct {
	*net.UnixListener
	path string
	info fs.FileInfo
	once sync.Once
}

// Close stops listening and removes the socket unless something else has
// replaced it.
func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if cur, statErr := os.Lstat(l.path); statErr == nil && os.SameFile(cur, l.info) {
			os.Remove(l.path)
		}
	})
	return err
}

// RefreshPath is where POST asks hostd to read every secret again now.
const RefreshPath = "/v1/refresh"

// NewHandler serves st's snapshot as JSON on GET Path and, when refresh is
// not nil, calls it on POST RefreshPath (204 when it was asked; 409 with its
// error, for example when there is no template to refresh).
func NewHandler(st *State, refresh func() error) http.Handler {
	mux := http.NewServeMux()
	if refresh != nil {
		mux.HandleFunc("POST "+RefreshPath, func(w http.ResponseWriter, r *http.Request) {
			if err := refresh(); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, r *http.Request) {
		snap := st.Snapshot(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err := json.NewEncoder(w).Encode(snap); err != nil {
			// The client went away; nothing to tell it.
			return
		}
	})
	return mux
}

// Serve answers on ln with h until ctx is done, then shuts down, giving
// requests in flight a short grace period. It closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		ln.Close()
		return fmt.Errorf("status server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-errc // http.ErrServerClosed
	ln.Close()
	if err != nil {
		return fmt.Errorf("status server shutdown: %w", err)
	}
	return nil
}
