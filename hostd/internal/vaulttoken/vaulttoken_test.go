package vaulttoken

import (
	"strings"
	"testing"
)

func TestRedactHidesEveryTokenForm(t *testing.T) {
	for _, tok := range []string{
		"hvs.CAESIJ1aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
		"hvb.AAAAAQJ2Z3Jv_-x",
		"hvr.abcdefgh", // the shortest current form: eight characters
		"HVS.abcdefgh1234",
		"s.abcdefghijklmnopqrstuvwx",       // legacy: 24 characters
		"b.abcdefghijklmnopqrstuvwxyz0123", // legacy, longer
	} {
		text := "login failed: token " + tok + " rejected"
		got := Redact(text)
		if strings.Contains(got, tok) || !strings.Contains(got, Redacted) {
			t.Errorf("Redact(%q) = %q: the token shows", text, got)
		}
		if !Contains(text) {
			t.Errorf("Contains(%q) = false", text)
		}
	}
}

func TestRedactKeepsOrdinaryText(t *testing.T) {
	for _, text := range []string{
		"vault answered 403: permission denied",
		"hvs.short", // seven characters: not a token
		"unit waf-agent.service failed",
		"s.tooShortForALegacyTok", // 23 characters
		"access key 0b5a0c1e-2d3f-4a5b-8c6d-7e8f9a0b1c2d",
	} {
		if got := Redact(text); got != text {
			t.Errorf("Redact(%q) = %q, want it unchanged", text, got)
		}
		if Contains(text) {
			t.Errorf("Contains(%q) = true", text)
		}
	}
}
