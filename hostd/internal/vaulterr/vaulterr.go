// Package vaulterr owns how hostd reads Vault's error answers: the one line
// an operator sees for one (in a log line, an event, status), and whether
// Vault refused a token as invalid.
//
// It does not decide what to do about an answer; auth, report and the
// proxy do.
package vaulterr

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"
)

// InvalidToken is the phrase of Vault's 403 for a token it does not know
// (revoked, expired, or never issued).
const InvalidToken = "invalid token"

// Describe turns an error of Vault's client into one line: the HTTP status
// and Vault's messages, without the bullets and line breaks of its
// multi-error form; any other error is its own text.
func Describe(err error) string {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return err.Error()
	}
	msgs := make([]string, 0, len(re.Errors))
	for _, e := range re.Errors {
		if m := strings.Join(strings.Fields(strings.ReplaceAll(e, "*", "")), " "); m != "" {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		msgs = append(msgs, "no reason given")
	}
	return fmt.Sprintf("vault answered %d: %s", re.StatusCode, strings.Join(msgs, "; "))
}

// Error is err with Describe's text; errors.Is and errors.As still see err.
func Error(err error) error { return described{err} }

type described struct{ err error }

func (d described) Error() string { return Describe(d.err) }
func (d described) Unwrap() error { return d.err }

// IsInvalidToken reports whether err is Vault refusing the request's token
// as invalid, rather than refusing the token a path (permission denied).
func IsInvalidToken(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, InvalidToken) {
			return true
		}
	}
	return false
}
