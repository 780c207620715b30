// Package harness runs the product's real programs for the end-to-end tests.
//
// It builds the real Vault server and CLI from the e2e/vault module (once,
// cached by the content of that module), builds this repository's commands
// fresh for every test run, starts Vault dev servers with those commands in
// their plugin directory, serves the Signal Sciences simulator in process,
// and runs vault CLI commands the way an operator types them.
//
// It owns only the processes and files of a test run (temporary directories
// and the Vault build cache); it must not reach into the product's packages
// beyond the simulator, and must not touch anything else on the machine.
package harness
