// Command vault is the real HashiCorp Vault server and CLI, built from Vault's
// own Go module so that the end-to-end tests run against the genuine article.
//
// It does exactly what Vault's main.go does and nothing more.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
