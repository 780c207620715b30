package sigsci

import "time"

// Site is one site (workspace) of a corp.
type Site struct {
	Name        string
	DisplayName string
	Created     time.Time
}

// KeySet is one agent key set of a site. fmt never prints its SecretKey:
// String, GoString and Format redact it (redact.go). (encoding/json does not:
// storing a KeySet as JSON keeps the secret, as it must.)
type KeySet struct {
	AccessKey string
	SecretKey string
	Primary   bool
	Created   time.Time
}
