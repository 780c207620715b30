// Package policy tests the Vault side of packaging/ end to end: the plugin
// registration script, the operator and host policies and the AppRole
// example, run verbatim against a real Vault dev server with the plugin built
// from this checkout and the Signal Sciences simulator behind it.
//
// It holds tests only; it must not change the product or its packaging.
package policy
