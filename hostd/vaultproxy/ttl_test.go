package vaultproxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
)

func dataTTL(t *testing.T, body []byte) json.RawMessage {
	t.Helper()
	var secret struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &secret); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, body)
	}
	return secret.Data["ttl"]
}

func TestTTLOfRotatingSecretFollowsJitteredRefresh(t *testing.T) {
	for _, c := range []struct {
		name, path string
		rand       float64
		want       string
	}{
		{"long ttl, low jitter", "/v1/sigsci/creds/long", 0, "27"},          // 30s -10 %
		{"long ttl, high jitter", "/v1/sigsci/creds/long", 0.9999, "32"},    // 30s +10 % (floor)
		{"ttl already shorter", "/v1/sigsci/creds/short", 0.5, "10"},        // kept
		{"ttl as a string", "/v1/sigsci/creds/string-ttl", 0.5, "30"},       // number now
		{"ttl zero", "/v1/sigsci/creds/zero", 0.5, "1"},                     // never 0
		{"leased secret untouched", "/v1/sigsci/creds/leased", 0.5, "3600"}, // has a lease id
		{"kv without rotation_period", "/v1/secret/data/kv", 0.5, ""},       // no data.ttl at top
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.rand
			s := newSetup(t, "", Options{RefreshInterval: 30 * time.Second, Clock: stage.Clock{Rand: func() float64 { return r }}})
			code, body := s.get(t, c.path, nil)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			if got := string(dataTTL(t, body)); got != c.want {
				t.Fatalf("data.ttl = %s, want %s (body %s)", got, c.want, body)
			}
			if c.path == "/v1/sigsci/creds/long" && !bytes.Contains(body, []byte(`"secret_key":"sk"`)) {
				t.Fatalf("the rest of the secret was lost: %s", body)
			}
		})
	}
}

func TestStaticSecretGetsTheRefreshIntervalAsLeaseDuration(t *testing.T) {
	for _, c := range []struct {
		name, path string
		want       string
	}{
		{"kv version 2, lease_duration 0", "/v1/secret/data/kv", "30"},
		{"kv version 1, the mount's 768h", "/v1/kv1/static", "30"},
		{"already shorter", "/v1/kv1/short", "10"},
		{"leased secret untouched", "/v1/sigsci/creds/leased", "600"},
		{"rotating secret keeps lease_duration", "/v1/sigsci/creds/long", "0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(t, "", Options{RefreshInterval: 30 * time.Second, Clock: stage.Clock{Rand: func() float64 { return 0.5 }}})
			code, body := s.get(t, c.path, nil)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			var secret struct {
				LeaseDuration json.RawMessage `json:"lease_duration"`
			}
			if err := json.Unmarshal(body, &secret); err != nil {
				t.Fatal(err)
			}
			if got := string(secret.LeaseDuration); got != c.want {
				t.Fatalf("lease_duration = %s, want %s (body %s)", got, c.want, body)
			}
			if c.path == "/v1/secret/data/kv" && !bytes.Contains(body, []byte(`"metadata":{"version":1}`)) {
				t.Fatalf("the rest of the secret was lost: %s", body)
			}
		})
	}
}

func TestNoRewriteWithoutRefreshInterval(t *testing.T) {
	s := newSetup(t, "", Options{})
	_, body := s.get(t, "/v1/sigsci/creds/long", nil)
	if got := string(dataTTL(t, body)); got != "3600" {
		t.Fatalf("data.ttl = %s, want the upstream 3600", got)
	}
}
