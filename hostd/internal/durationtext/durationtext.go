// Package durationtext owns how hostd shortens a duration it writes for an
// operator, in configuration errors and in the status table: Go's form
// without the zero units it ends with (1h, not 1h0m0s). It only formats: it
// parses nothing and rounds nothing.
package durationtext

import (
	"strings"
	"time"
)

// Short returns d as time.Duration.String does, less trailing zero minutes
// and seconds: 1h, 5m, 1h30m, 1m30s, 250ms.
func Short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
