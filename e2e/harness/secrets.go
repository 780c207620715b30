package harness

import (
	"strings"
	"testing"
)

// minSecretLen guards against checking for a value so short (or empty) that
// its absence proves nothing.
const minSecretLen = 8

// NoSecrets fails the test if text (named where, e.g. "the server log")
// contains any of the secrets. secrets maps a description to the value; a
// failure names the description, never the value.
func NoSecrets(t testing.TB, where, text string, secrets map[string]string) {
	t.Helper()
	for what, value := range secrets {
		if len(value) < minSecretLen {
			t.Fatalf("checking %s for %s: the value is too short to check", where, what)
		}
		if strings.Contains(text, value) {
			t.Errorf("%s contains %s", where, what)
		}
	}
}
