package vaultproxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

// vaultClientThrough returns a Vault client that reaches Vault through the
// proxy the way consul-template does: its transport dials the proxy and, as
// every Go transport, asks for gzip by itself.
func vaultClientThrough(t *testing.T, p *Proxy) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = Address
	cfg.MaxRetries = 0
	cfg.HttpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: p.DialContext}}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("placeholder") // the proxy replaces it
	return c
}

// A load balancer in front of Vault that gzips JSON (nginx with gzip_types
// application/json): secrets still read as JSON through the proxy, with the
// ttl rewrite on, and a revoked token is still recognised as one.
func TestThroughACompressingFrontEnd(t *testing.T) {
	v := vaulttest.Start(t)
	v.Mount("secret", "kv", map[string]string{"version": "2"})
	v.Write("secret/data/agent", map[string]any{"data": map[string]any{"accessKey": "ak-1"}})
	v.WritePolicy("agent", `path "secret/data/agent" { capabilities = ["read"] }`)
	created, err := v.Client().Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"agent"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	token := created.Auth.ClientToken

	front := vaulttest.NewFrontEnd(t, v.Addr)
	front.SetGzip(true)
	s := newSetup(t, front.URL, Options{RefreshInterval: 30 * time.Second})
	s.tokens.set(token)
	client := vaultClientThrough(t, s.proxy)

	secret, err := client.Logical().Read("secret/data/agent")
	if err != nil {
		t.Fatalf("read through a compressing front end: %v", err)
	}
	data, _ := secret.Data["data"].(map[string]any)
	if data["accessKey"] != "ak-1" {
		t.Fatalf("secret data %v, want accessKey ak-1", secret.Data)
	}
	if secret.LeaseDuration != 30 {
		t.Fatalf("lease_duration %d, want the refresh interval 30 (the proxy's rewrite saw the JSON)", secret.LeaseDuration)
	}
	if front.Compressed.Load() == 0 {
		t.Fatal("the front end compressed nothing; the test would prove nothing")
	}

	if err := v.Client().Auth().Token().RevokeOrphan(token); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Logical().Read("secret/data/agent"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("read with a revoked token: %v, want Vault's permission denied", err)
	}
	if got := s.tokens.rejections(); len(got) != 1 || got[0] != token {
		t.Fatalf("%d rejections reported, want the revoked token reported once", len(got))
	}
	if logs := s.logs.String(); strings.Contains(logs, token) {
		t.Fatal("the token appeared in the proxy's logs")
	}
}

// A front end that compresses even when the request did not ask for it: the
// proxy decompresses by itself, so what it inspects and passes on is plain.
func TestGzipAnswerNotAskedForIsDecompressed(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		if r.URL.Path == "/v1/secret/revoked" {
			w.WriteHeader(http.StatusForbidden)
		}
		zw := gzip.NewWriter(w)
		switch r.URL.Path {
		case "/v1/secret/revoked":
			io.WriteString(zw, `{"errors":["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]}`)
		default:
			io.WriteString(zw, `{"lease_id":"","lease_duration":0,"data":{"accessKey":"ak"}}`)
		}
		zw.Close()
	}))
	t.Cleanup(upstream.Close)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableCompression = true // never asks for gzip, so never decompresses
	s := newSetup(t, upstream.URL, Options{RefreshInterval: 30 * time.Second, Transport: transport})

	code, body := s.get(t, "/v1/secret/data/kv", nil)
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"lease_duration":30`)) {
		t.Fatalf("status %d body %q, want plain JSON with the rewritten lease_duration", code, body)
	}
	s.get(t, "/v1/secret/revoked", nil)
	if got := s.tokens.rejections(); len(got) != 1 || got[0] != tokenA {
		t.Fatalf("got %d rejections, want the token reported once", len(got))
	}
}
