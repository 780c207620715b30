package sigsci

import (
	"fmt"
	"strconv"
	"time"
)

// Site is one site (workspace) of a corp.
type Site struct {
	Name        string
	DisplayName string
	Created     time.Time
}

// KeySet is one agent key set of a site. fmt never prints its SecretKey:
// String, GoString and Format redact it. (encoding/json does not: storing a
// KeySet as JSON keeps the secret, as it must.)
type KeySet struct {
	AccessKey string
	SecretKey string
	Primary   bool
	Created   time.Time
}

const redactedMark = "[redacted]"

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
