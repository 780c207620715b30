// Package harness runs the product's real programs for the end-to-end tests.
//
// It builds the real Vault server and CLI from the e2e/vault module (once,
// cached by the content of that module), builds this repository's commands
// fresh for every test run, starts Vault dev servers with those commands in
// their plugin directory, serves the Signal Sciences simulator in process,
// and runs vault CLI commands the way an operator types them.
//
// StartRaftCluster starts three real Vault servers with integrated storage
// (raft) instead: initialised with one Shamir key share, joined and unsealed,
// every node a voter. A test types commands against any node (standbys
// forward them to the active one), kills a node with SIGKILL and restarts it
// on its data; the root token and the unseal key are kept for the secrets
// sweep and never printed.
//
// It owns only the processes and files of a test run (temporary directories
// and the Vault build cache); it must not reach into the product's packages
// beyond the simulator (and the client's KeySet, which the simulator's
// control API returns) and internal/poll, and must not touch anything else on the machine.
package harness
