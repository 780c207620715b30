package status

import "regexp"

// vaultToken matches Vault service, batch and recovery tokens in both the
// current (hvs./hvb./hvr.) and the legacy (s./b./r.) formats.
var vaultToken = regexp.MustCompile(`\b(?:hv[sbr]\.[A-Za-z0-9_-]{20,}|[sbr]\.[A-Za-z0-9]{24,})`)

// scrub hides anything in text that looks like a Vault token. Events should
// never carry one; this makes sure status output cannot show one anyway.
func scrub(text string) string {
	return vaultToken.ReplaceAllString(text, "[redacted]")
}
