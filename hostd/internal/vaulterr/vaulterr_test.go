package vaulterr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"multi-error form", &api.ResponseError{StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}},
			"vault answered 403: 1 error occurred: permission denied"},
		{"several messages", &api.ResponseError{StatusCode: 400, Errors: []string{"missing role_id", " bad  input "}},
			"vault answered 400: missing role_id; bad input"},
		{"no message", &api.ResponseError{StatusCode: 500}, "vault answered 500: no reason given"},
		{"blank messages", &api.ResponseError{StatusCode: 502, Errors: []string{"", " * "}}, "vault answered 502: no reason given"},
		{"wrapped", fmt.Errorf("token lookup: %w", &api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}),
			"token lookup: vault answered 503: Vault is sealed"},
		{"wrapped twice, with a suffix", fmt.Errorf("login: %w (gave up)", fmt.Errorf("token lookup: %w", &api.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}})),
			"login: token lookup: vault answered 403: permission denied (gave up)"},
		{"two answers", fmt.Errorf("renew: %w; login: %w", &api.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}},
			&api.ResponseError{HTTPMethod: "PUT", URL: "https://vault:8200/v1/auth/approle/login?x=1", StatusCode: 400, Errors: []string{"invalid role or secret ID"}}),
			"renew: vault answered 403: permission denied; login: vault answered 400: invalid role or secret ID"},
		{"already wrapped", fmt.Errorf("report: %w", Wrap(&api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}})),
			"report: vault answered 503: Vault is sealed"},
		{"not Vault's answer", errors.New("dial tcp 127.0.0.1:8200: connect: connection refused"),
			"dial tcp 127.0.0.1:8200: connect: connection refused"},
		{"not Vault's answer, over lines", errors.New("read secret_id_file:\n\tpermission denied"), "read secret_id_file: permission denied"},
		{"no error", nil, ""},
	} {
		if got := Describe(tc.err); got != tc.want {
			t.Errorf("%s: Describe = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestIsInvalidToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"revoked token", &api.ResponseError{StatusCode: 403, Errors: []string{"2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"}}, true},
		{"permission denied", &api.ResponseError{StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}, false},
		{"the phrase on another status", &api.ResponseError{StatusCode: 400, Errors: []string{"invalid token"}}, false},
		{"not Vault's answer", errors.New("invalid token"), false},
	} {
		if got := IsInvalidToken(tc.err); got != tc.want {
			t.Errorf("%s: IsInvalidToken = %t, want %t", tc.name, got, tc.want)
		}
	}
}

func TestWrapKeepsWhatItWraps(t *testing.T) {
	answer := &api.ResponseError{StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}
	err := Wrap(answer)
	var re *api.ResponseError
	if err.Error() != "vault answered 403: 1 error occurred: permission denied" || !errors.As(err, &re) || re != answer {
		t.Fatalf("Wrap = %q (As %v)", err, re)
	}
	if Wrap(nil) != nil {
		t.Fatal("Wrap(nil) is not nil")
	}
}
