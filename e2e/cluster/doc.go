// Package cluster is the product on a Vault cluster: three real Vault
// servers with integrated storage (raft), the plugin built from this
// checkout, and the Signal Sciences simulator. Operators type the documented
// commands against standby nodes, which forward them to the active node; the
// active node is killed with SIGKILL while a rotation's create is in flight,
// and the plugin is reloaded while a rotation runs. After each, Vault and the
// API must agree: no key set at the API that Vault does not know (nothing
// orphaned) and none that Vault stores missing at the API (nothing lost).
//
// It holds tests only; it must not change the product or its documentation.
package cluster
