package harness

import (
	"fmt"
	"os"
	"testing"
)

// Unavailable stops a test that cannot run on this machine (for example
// because Vault cannot be built here). It skips the test with the reason,
// except under CI (CI=true), where a test that cannot run is a failure.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run under CI: %s", reason)
	}
	t.Skipf("skipped, cannot run here: %s (under CI=true this fails)", reason)
}
