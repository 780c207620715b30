package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Fetch asks the hostd listening on socketPath for its snapshot. Any error
// means the daemon's state is unknown (not running, not answering, or an
// answer that is not a snapshot).
func Fetch(ctx context.Context, socketPath string) (Snapshot, error) {
	client := socketClient(socketPath)
	defer client.CloseIdleConnections()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://hostd"+Path, nil)
	if err != nil {
		return Snapshot{}, fmt.Errorf("status request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Snapshot{}, fmt.Errorf("hostd status socket %s: %w", socketPath, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Snapshot{}, fmt.Errorf("hostd status socket %s: HTTP %d: %s", socketPath, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var snap Snapshot
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&snap); err != nil {
		return Snapshot{}, fmt.Errorf("hostd status socket %s: decode snapshot: %w", socketPath, err)
	}
	return snap, nil
}

// AskRefresh asks the hostd listening on socketPath to read every secret
// again now (POST RefreshPath). It returns once hostd has taken the ask; the
// renders follow within moments and show in the snapshot.
func AskRefresh(ctx context.Context, socketPath string) error {
	client := socketClient(socketPath)
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://hostd"+RefreshPath, nil)
	if err != nil {
		return fmt.Errorf("refresh request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("hostd status socket %s: %w", socketPath, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("hostd refused the refresh: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// socketClient talks HTTP over the unix socket at path.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
		Proxy:             nil,
		DisableKeepAlives: true,
	}}
}

// unwrapURLError drops net/http's `Get "http://hostd/...":` prefix, which
// only confuses an operator looking at a unix socket.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
