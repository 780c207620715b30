// Package vaulttoken owns what a Vault token looks like to hostd, so that
// every place that keeps tokens out of its output (consul-template's log
// lines, status output) hides the same things.
//
// It does not find tokens in structured data: types that carry a token keep
// it out of their own output.
package vaulttoken

import "regexp"

// pattern matches Vault service, batch and recovery tokens in the current
// (hvs./hvb./hvr.) and the legacy (s./b./r.) formats, in any case. It errs
// on the side of hiding: eight characters after the current prefix are
// enough, and a legacy token of 24 characters matches with whatever follows.
var pattern = regexp.MustCompile(`(?i)\b(?:hv[sbr]\.[A-Za-z0-9_-]{8,}|[sbr]\.[A-Za-z0-9]{24,})`)

// Redacted stands where Redact removed a token.
const Redacted = "[redacted]"

// Contains reports whether text holds anything that looks like a Vault token.
func Contains(text string) bool { return pattern.MatchString(text) }

// Redact replaces everything in text that looks like a Vault token with
// Redacted.
func Redact(text string) string { return pattern.ReplaceAllString(text, Redacted) }
