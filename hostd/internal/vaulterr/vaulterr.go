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

// Describe turns an error of Vault's client into one line: each Vault
// answer in err's tree becomes its HTTP status and Vault's messages, without
// the request's URL and the bullets and line breaks of Vault's multi-error
// form; what callers wrapped around an answer ("token lookup: ...") stays.
// Any other error is its own text, on one line; a nil error is "".
func Describe(err error) string {
	if err == nil {
		return ""
	}
	text := err.Error()
	for _, re := range answers(err) {
		text = strings.Replace(text, re.Error(), answerLine(re), 1)
	}
	return oneLine(text)
}

// answers lists the Vault answers in err's tree, in the order errors.As
// visits it.
func answers(err error) []*api.ResponseError {
	if re, ok := err.(*api.ResponseError); ok {
		return []*api.ResponseError{re}
	}
	var out []*api.ResponseError
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			out = answers(inner)
		}
	case interface{ Unwrap() []error }:
		for _, inner := range u.Unwrap() {
			out = append(out, answers(inner)...)
		}
	}
	return out
}

// answerLine is one Vault answer as "vault answered <status>: <messages>".
func answerLine(re *api.ResponseError) string {
	msgs := make([]string, 0, len(re.Errors))
	for _, e := range re.Errors {
		if m := oneLine(strings.ReplaceAll(e, "*", "")); m != "" {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		msgs = append(msgs, "no reason given")
	}
	return fmt.Sprintf("vault answered %d: %s", re.StatusCode, strings.Join(msgs, "; "))
}

// oneLine folds text's line breaks, tabs and runs of spaces into single
// spaces.
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
