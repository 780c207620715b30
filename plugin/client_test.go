package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

func TestUpstreamErrorStatus(t *testing.T) {
	apiErr := func(status int) error {
		return fmt.Errorf("wrapped: %w", &sigsci.APIError{Method: "GET", Path: "/corps/acme/sites/www/keys", StatusCode: status, Message: "msg"})
	}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{apiErr(404), http.StatusNotFound},
		{apiErr(401), http.StatusBadGateway},
		{apiErr(500), http.StatusBadGateway},
		{apiErr(429), http.StatusBadGateway},
		{context.DeadlineExceeded, http.StatusGatewayTimeout},
		{errors.New("connection refused"), http.StatusBadGateway},
	} {
		err := upstreamError("reading keys", tc.err)
		var coded logical.HTTPCodedError
		if !errors.As(err, &coded) || coded.Code() != tc.want {
			t.Fatalf("%v: got %v, want status %d", tc.err, err, tc.want)
		}
		if !strings.HasPrefix(err.Error(), "reading keys: ") {
			t.Fatalf("message lacks context: %s", err)
		}
	}
}

func TestIsPermanentAPIError(t *testing.T) {
	for status, want := range map[int]bool{400: true, 401: true, 403: true, 404: true, 408: false, 429: false, 500: false, 503: false} {
		err := &sigsci.APIError{StatusCode: status}
		if got := isPermanentAPIError(err); got != want {
			t.Fatalf("status %d: permanent=%v, want %v", status, got, want)
		}
	}
	if isPermanentAPIError(errors.New("network")) {
		t.Fatal("a network error is not permanent")
	}
	limited := &sigsci.APIError{StatusCode: http.StatusBadRequest, Message: "Rate limit exceeded", RateLimited: true}
	if isPermanentAPIError(fmt.Errorf("wrapped: %w", limited)) {
		t.Fatal("a 400 that says the rate limit was exceeded is not permanent")
	}
}

// countingBackend is a backend that builds real API clients and counts
// how many it has built.
func countingBackend() (b *backend, built *int) {
	built = new(int)
	b = newBackend("v0.1.0", func(r *roleEntry, hc *http.Client, log hclog.Logger) (keysAPI, error) {
		*built++
		return newSigsciClient(r, hc, log)
	})
	return b, built
}

func TestClientCacheOnePerRoleUntilDropped(t *testing.T) {
	b, built := countingBackend()
	r := &roleEntry{Corp: "acme", Email: acmeEmail, Token: acmeToken, APIURL: sigsci.DefaultBaseURL}
	for range 3 {
		if _, err := b.client("vault-user", r); err != nil {
			t.Fatal(err)
		}
	}
	if *built != 1 {
		t.Fatalf("built %d clients for one role", *built)
	}
	b.dropClient("vault-user")
	if _, err := b.client("vault-user", r); err != nil || *built != 2 {
		t.Fatalf("after drop: built %d, err %v", *built, err)
	}
	bad := &roleEntry{Corp: "acme", Email: acmeEmail, Token: acmeToken, APIURL: "ftp://x"}
	if _, err := b.client("bad", bad); err == nil || strings.Contains(err.Error(), acmeToken) {
		t.Fatalf("invalid client config: %v", err)
	}
}

func TestClientCacheRebuiltWhenTheRoleChanged(t *testing.T) {
	b, built := countingBackend()
	r := &roleEntry{Corp: "acme", Email: acmeEmail, Token: acmeToken, APIURL: sigsci.DefaultBaseURL}
	if _, err := b.client("vault-user", r); err != nil {
		t.Fatal(err)
	}
	// A request that loaded the role after an update, while the old client
	// is still cached, must not get the old credentials.
	updated := *r
	updated.Token = otherToken
	if _, err := b.client("vault-user", &updated); err != nil || *built != 2 {
		t.Fatalf("changed role: built %d clients, err %v", *built, err)
	}
}
