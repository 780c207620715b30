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

// InvalidTokenMessage is the message of Vault's 403 for a token it does
// not know (revoked, expired, or never issued).
const InvalidTokenMessage = "invalid token"

// Describe turns an error of Vault's client into one line: the HTTP status
// and Vault's messages, without the bullets and line breaks of its
// multi-error form, and with whatever the callers wrapped around the answer
// ("token lookup: ..."). Any other error is its own text, on one line; a
// nil error is "".
func Describe(err error) string {
	if err == nil {
		return ""
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return oneLine(err.Error())
	}
	msgs := make([]string, 0, len(re.Errors))
	for _, e := range re.Errors {
		if m := oneLine(strings.ReplaceAll(e, "*", "")); m != "" {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		msgs = append(msgs, "no reason given")
	}
	answer := fmt.Sprintf("vault answered %d: %s", re.StatusCode, strings.Join(msgs, "; "))
	before, after, wrapped := strings.Cut(err.Error(), re.Error())
	if !wrapped {
		return answer
	}
	return oneLine(before + answer + after)
}

func oneLine(text string) string { return strings.Join(strings.Fields(text), " ") }

// Wrap is err with Describe's text; errors.Is and errors.As still see err.
// A nil err stays nil.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	return described{err}
}

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
		if strings.Contains(e, InvalidTokenMessage) {
			return true
		}
	}
	return false
}
