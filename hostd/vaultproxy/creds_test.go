package vaultproxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// credsVault answers a creds secret with the access key held in key, like
// the sigsci plugin does, and a few answers that are not creds answers.
func credsVault(t *testing.T, key *atomic.Pointer[string]) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/sigsci/creds/vault-user/sites/www", "/v1/team/sigsci/creds/ops/sites/api":
			fmt.Fprintf(w, `{"lease_id":"","data":{"accessKey":%q,"secretKey":"the-secret","rotation_period":86400,"ttl":3600}}`, *key.Load())
		case "/v1/other/creds/x/sites/y":
			io.WriteString(w, `{"lease_id":"","data":{"username":"u","password":"p"}}`)
		case "/v1/sigsci/creds/vault-user/sites/garbled":
			io.WriteString(w, `{"data":`)
		case "/v1/sigsci/creds/vault-user/sites/text":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "accessKey=x")
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[]}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCredsAnswersAreLoggedWithTheirAccessKey(t *testing.T) {
	var key atomic.Pointer[string]
	first, second := "ak-first", "ak-second"
	key.Store(&first)
	s := newSetup(t, credsVault(t, &key), Options{RefreshInterval: 30 * time.Second})
	const www = "sigsci/creds/vault-user/sites/www"

	start := s.proxy.Mark()
	if got := s.proxy.AccessKeys(www, start); got != nil {
		t.Fatalf("before any answer: %q", got)
	}
	for range 2 {
		if code, _ := s.get(t, "/v1/"+www, nil); code != http.StatusOK {
			t.Fatalf("read: %d", code)
		}
	}
	if got := s.proxy.AccessKeys(www, start); !slices.Equal(got, []string{first}) {
		t.Fatalf("after two answers with one key: %q", got)
	}

	key.Store(&second)
	beforeRotation := s.proxy.Mark()
	s.get(t, "/v1/"+www, nil)
	if got := s.proxy.AccessKeys(www, start); !slices.Equal(got, []string{first, second}) {
		t.Fatalf("since the start: %q, want both keys, oldest first", got)
	}
	if got := s.proxy.AccessKeys(www, beforeRotation); !slices.Equal(got, []string{second}) {
		t.Fatalf("since the rotation: %q, want only the new key", got)
	}
	if got := s.proxy.AccessKeys(www, s.proxy.Mark()); got != nil {
		t.Fatalf("since now: %q, want none", got)
	}

	s.get(t, "/v1/team/sigsci/creds/ops/sites/api", nil)
	if got := s.proxy.AccessKeys("/team/sigsci/creds/ops/sites/api/", start); !slices.Equal(got, []string{second}) {
		t.Fatalf("a mount with a slash: %q", got)
	}
	all := s.proxy.AnsweredKeys(start)
	slices.Sort(all)
	if !slices.Equal(all, []string{first, second}) {
		t.Fatalf("every path since the start: %q, want both keys once", all)
	}
	if got := s.proxy.AnsweredKeys(beforeRotation); !slices.Equal(got, []string{second}) {
		t.Fatalf("every path since the rotation: %q", got)
	}
}

func TestAnswersThatAreNoCredsAnswerAreNotTakenForOne(t *testing.T) {
	var key atomic.Pointer[string]
	k := "ak"
	key.Store(&k)
	s := newSetup(t, credsVault(t, &key), Options{RefreshInterval: 30 * time.Second})
	for _, path := range []string{"other/creds/x/sites/y", "sigsci/creds/vault-user/sites/missing"} {
		s.get(t, "/v1/"+path, nil)
		if got := s.proxy.AccessKeys(path, 0); got != nil {
			t.Errorf("%s: %q, want nothing logged (no access key / not found)", path, got)
		}
	}
	// An answer for a creds path that cannot be read counts, with an
	// unknown key: the last key known must not stand in for it.
	for _, path := range []string{"sigsci/creds/vault-user/sites/garbled", "sigsci/creds/vault-user/sites/text"} {
		s.get(t, "/v1/"+path, nil)
		if got := s.proxy.AccessKeys(path, 0); !slices.Equal(got, []string{""}) {
			t.Errorf("%s: %q, want one unknown key", path, got)
		}
	}
	if got := s.proxy.AnsweredKeys(0); got != nil {
		t.Errorf("every path: %q, want no key: none could be read", got)
	}
}

func TestKeyLogSaysUnknownOnceItDroppedAnswers(t *testing.T) {
	var l keyLog
	const path = "sigsci/creds/r/sites/s"
	for i := range maxKeyRuns + 4 {
		l.add(path, fmt.Sprintf("k%d", i))
	}
	p := &Proxy{}
	p.keys.paths, p.keys.next = l.paths, l.next
	all := p.AccessKeys(path, 0)
	if len(all) != maxKeyRuns+1 || all[0] != "" {
		t.Fatalf("since the first answer: %q, want the unknown first, then the %d runs kept", all, maxKeyRuns)
	}
	if got := p.AccessKeys(path, l.next-1); !slices.Equal(got, []string{fmt.Sprintf("k%d", maxKeyRuns+3)}) {
		t.Fatalf("since the last answer: %q", got)
	}
}

func TestParseCredsPath(t *testing.T) {
	for path, want := range map[string]*CredsSecret{
		"sigsci/creds/vault-user/sites/www":      {Mount: "sigsci", Role: "vault-user", Site: "www"},
		"/ns1/sigsci/creds/vault-user/sites/www": {Mount: "ns1/sigsci", Role: "vault-user", Site: "www"},
		"sigsci/creds/vault-user/sites/":         nil,
		"sigsci/creds/vault-user/sites/www/x":    nil,
		"sigsci/rotate/sites/www":                nil,
		"secret/data/agent":                      nil,
	} {
		got, ok := ParseCredsPath(path)
		if ok != (want != nil) || (ok && got != *want) {
			t.Errorf("ParseCredsPath(%q) = %+v, %v; want %+v", path, got, ok, want)
		}
	}
}
