package sigsci

import (
	"fmt"
	"strconv"
	"time"
)

// How the package's values print: fmt never shows a secret key or the API
// token, whatever the verb. (encoding/json does: a KeySet stored as JSON
// keeps its secret, as it must.)

// redactedMark stands where a secret was left out.
const redactedMark = "[redacted]"

// redact is the mark for a secret that is set, "" for one that is not.
func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return redactedMark
}

// String prints the set with its secret redacted.
func (k KeySet) String() string {
	created := ""
	if !k.Created.IsZero() {
		created = k.Created.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("{AccessKey:%s SecretKey:%s Primary:%t Created:%s}",
		k.AccessKey, redact(k.SecretKey), k.Primary, created)
}

// GoString prints the set as Go syntax with its secret redacted.
func (k KeySet) GoString() string {
	return fmt.Sprintf("sigsci.KeySet{AccessKey:%q, SecretKey:%q, Primary:%t, Created:%s}",
		k.AccessKey, redact(k.SecretKey), k.Primary, k.Created.GoString())
}

// Format makes every fmt verb print the redacted form.
func (k KeySet) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = f.Write([]byte(k.GoString()))
	case verb == 'q':
		_, _ = f.Write([]byte(strconv.Quote(k.String())))
	default:
		_, _ = f.Write([]byte(k.String()))
	}
}

// Format prints the Config with its token redacted, for every fmt verb.
func (cfg Config) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "sigsci.Config{BaseURL:%s Email:%s Token:%s}", cfg.BaseURL, cfg.Email, redact(cfg.Token))
}

// Format prints where the Client talks to and as whom, for every fmt verb;
// never its token. Its receiver is a value, unlike the other methods', so
// that a copied Client formats the same way.
func (c Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "sigsci.Client{base_url=%s email=%s}", c.baseURL, c.email)
}
