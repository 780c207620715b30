// Command fakeagent stands in for the Signal Sciences WAF agent in the
// end-to-end tests and the demo.
//
// Like the real agent it reads its keys from agent.conf at start and keeps
// running on them. It accepts the real agent's names (accesskeyid,
// secretaccesskey), the documentation's secretkey spelling, and quoted or bare
// values. It proves the pair against the simulator's agent-key check, exits
// non-zero when the pair is not live (so systemd sees a failed start), and
// records which access key it runs with. With -recheck it proves the pair
// again at that interval, as the real agent does each time it talks to the
// cloud, and exits non-zero once the pair is no longer live. It never prints
// the secret key. It owns only -state-file; it reads agent.conf and never
// writes it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

func main() {
	configPath := flag.String("config", "/etc/sigsci/agent.conf", "agent configuration to read")
	checkURL := flag.String("check-url", "", "the simulator's agent-key check endpoint (…/sim/agent/check)")
	stateFile := flag.String("state-file", "", "where to record the access key the agent runs with (JSON)")
	recheck := flag.Duration("recheck", 0, "prove the pair again at this interval and exit non-zero once it is not live; 0: only at start")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if err := run(ctx, logger, *configPath, *checkURL, *stateFile, *recheck); err != nil {
		logger.Error("fakeagent stopped", "err", err)
		os.Exit(1)
	}
}

// State is what the agent records about the keys it runs with.
type State struct {
	AccessKey string    `json:"accessKey"`
	Corp      string    `json:"corp"`
	Site      string    `json:"site"`
	Primary   bool      `json:"primary"`
	Started   time.Time `json:"started"`
	PID       int       `json:"pid"`
	// Checked is when the pair last proved live (-recheck).
	Checked time.Time `json:"checked"`
	// Lost says why the pair stopped being live while the agent ran on it.
	Lost string `json:"lost,omitempty"`
}

func run(ctx context.Context, logger *slog.Logger, configPath, checkURL, stateFile string, recheck time.Duration) error {
	if checkURL == "" {
		return errors.New("-check-url is required")
	}
	src, err := os.ReadFile(configPath)
	if err != nil {
		return fmt.Errorf("read agent configuration: %w", err)
	}
	keys, err := parseKeys(src)
	if err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	result, err := check(ctx, checkURL, keys)
	if err != nil {
		return err
	}
	if !result.Live {
		return fmt.Errorf("access key %s is not live: %s", keys.AccessKeyID, result.Reason)
	}
	started := time.Now().UTC()
	state := State{AccessKey: keys.AccessKeyID, Corp: result.Corp, Site: result.Site,
		Primary: result.Primary, Started: started, Checked: started, PID: os.Getpid()}
	if err := writeState(stateFile, state); err != nil {
		return err
	}
	logger.Info("running with access key", "access_key", state.AccessKey, "corp", state.Corp,
		"site", state.Site, "primary", state.Primary)
	if err := keepChecking(ctx, checkURL, keys, recheck, stateFile, state); err != nil {
		return err
	}
	logger.Info("stopping", "access_key", state.AccessKey)
	return nil
}

// keepChecking proves keys again every interval until ctx ends, recording
// each proof in the state file; it returns an error once the pair is not
// live. A zero interval only waits for ctx.
func keepChecking(ctx context.Context, checkURL string, keys sigscisim.AgentCheckRequest, interval time.Duration, stateFile string, state State) error {
	if interval <= 0 {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		result, err := check(ctx, checkURL, keys)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			continue // the simulator unreachable is not a dead pair
		case !result.Live:
			state.Lost = result.Reason
			_ = writeState(stateFile, state)
			return fmt.Errorf("access key %s stopped being live while the agent ran on it: %s", keys.AccessKeyID, result.Reason)
		}
		state.Checked = time.Now().UTC()
		if err := writeState(stateFile, state); err != nil {
			return err
		}
	}
}

// parseKeys reads key = value lines; # starts a comment.
func parseKeys(src []byte) (sigscisim.AgentCheckRequest, error) {
	var keys sigscisim.AgentCheckRequest
	for n, line := range bytes.Split(src, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name, value, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return keys, fmt.Errorf("line %d: expected name = value", n+1)
		}
		v := string(unquote(bytes.TrimSpace(value)))
		switch string(bytes.TrimSpace(name)) {
		case "accesskeyid":
			keys.AccessKeyID = v
		case "secretaccesskey", "secretkey":
			keys.SecretAccessKey = v
		}
	}
	switch {
	case keys.AccessKeyID == "":
		return keys, errors.New("accesskeyid is missing or empty")
	case keys.SecretAccessKey == "":
		return keys, errors.New("secretaccesskey is missing or empty")
	}
	return keys, nil
}

func unquote(v []byte) []byte {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

func check(ctx context.Context, url string, keys sigscisim.AgentCheckRequest) (sigscisim.AgentCheckResult, error) {
	var result sigscisim.AgentCheckResult
	body, err := json.Marshal(keys)
	if err != nil {
		return result, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return result, fmt.Errorf("agent-key check: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result, fmt.Errorf("agent-key check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return result, fmt.Errorf("agent-key check: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&result); err != nil {
		return result, fmt.Errorf("agent-key check: %w", err)
	}
	return result, nil
}

// writeState records state in path, atomically; "" records nothing.
func writeState(path string, state State) error {
	if path == "" {
		return nil
	}
	data, err := json.Marshal(state)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
