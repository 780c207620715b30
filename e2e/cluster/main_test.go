package cluster

import (
	"os"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

var programs harness.Programs

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m, &programs, "vault-plugin-sigsci"))
}
