package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/poll"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// TestParseKeys: the agent reads its pair from every spelling it meets, and
// refuses a configuration without a complete pair.
func TestParseKeys(t *testing.T) {
	cases := []struct {
		name, src string
		complete  bool // holds the pair AK/SK
	}{
		{"accepts/real agent, quoted", "accesskeyid = \"AK\"\nsecretaccesskey = \"SK\"\n", true},
		{"accepts/documented, bare", "\naccesskeyid=AK\nsecretkey=SK\n\n", true},
		{"accepts/single quotes, comments", "# rendered by hostd\naccesskeyid = 'AK'\nsecretaccesskey='SK'\n", true},
		{"accepts/other settings around", "listener = \"127.0.0.1:8000\"\naccesskeyid=AK\nsecretaccesskey=SK\n", true},
		{"refuses/empty", "", false},
		{"refuses/no secret", "accesskeyid = \"AK\"\n", false},
		{"refuses/empty access", "accesskeyid = \"\"\nsecretaccesskey = \"SK\"\n", false},
		{"refuses/not name=value", "accesskeyid AK\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := parseKeys([]byte(tc.src))
			if !tc.complete {
				if err == nil {
					t.Fatal("accepted an incomplete configuration")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if keys.AccessKeyID != "AK" || keys.SecretAccessKey != "SK" {
				t.Fatalf("got %q/%q, want AK/SK", keys.AccessKeyID, keys.SecretAccessKey)
			}
		})
	}
}

// TestAgentStopsOnceItsPairIsRetired: with -recheck the agent proves its
// pair against the simulator again and again, and once the pair is retired
// it records why in its state file and stops with an error.
func TestAgentStopsOnceItsPairIsRetired(t *testing.T) {
	sim := sigscisim.New(sigscisim.Seed{Corps: []sigscisim.CorpSeed{{Name: "corp", Sites: []sigscisim.SiteSeed{{Name: "www"}}}}})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	pair := sim.KeySets("corp", "www")[0]
	dir := t.TempDir()
	config, stateFile := filepath.Join(dir, "agent.conf"), filepath.Join(dir, "agent.state")
	if err := os.WriteFile(config, []byte("accesskeyid = \""+pair.AccessKey+"\"\nsecretaccesskey = \""+pair.SecretKey+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	stopped := make(chan error, 1)
	go func() {
		stopped <- run(t.Context(), logger, config, srv.URL+"/sim/agent/check", stateFile, time.Millisecond)
	}()

	// Two proofs after the first: the agent keeps checking a live pair.
	first := waitForState(t, stateFile, func(State) bool { return true })
	waitForState(t, stateFile, func(s State) bool { return s.Checked.After(first.Checked) })
	sim.RemoveSite("corp", "www")
	select {
	case err := <-stopped:
		if err == nil || !strings.Contains(err.Error(), "retired") {
			t.Fatalf("the agent stopped with %v, want an error naming the retirement", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the agent kept running on a retired pair")
	}
	if s := readTestState(t, stateFile); s.Lost != "retired" || s.AccessKey != pair.AccessKey {
		t.Fatalf("state after the retirement: %+v", s)
	}
}

func waitForState(t *testing.T, path string, cond func(State) bool) State {
	t.Helper()
	var s State
	poll.Within(t, time.Minute, time.Millisecond, "the agent's state to show what the test waits for", func() (bool, string) {
		if _, err := os.Stat(path); err != nil {
			return false, err.Error()
		}
		s = readTestState(t, path)
		return cond(s), fmt.Sprintf("%+v", s)
	})
	return s
}

func readTestState(t *testing.T, path string) State {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}
