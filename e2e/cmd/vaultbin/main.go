// Command vaultbin prints the path of the real Vault binary the end-to-end
// tests use, building it first (into the user's cache directory) if this
// checkout's e2e/vault module has not been built yet. Build progress goes to
// standard error; the path alone goes to standard output:
//
//	SIGSCI_VAULT_BIN=$(cd e2e && go run ./cmd/vaultbin)
//
// It owns only its entry in that cache; it changes nothing in the checkout.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := harness.BuildVault(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaultbin:", err)
		os.Exit(1)
	}
	fmt.Println(bin)
}
