// Package vaultcli is the end-to-end scenario of the product documentation:
// the plugin install and every row of the Vault CLI table, typed verbatim
// into a shell with the real vault binary against a real Vault dev server,
// the plugin built from this checkout, and the Signal Sciences simulator.
//
// It holds tests only; it must not change the product or its documentation.
package vaultcli
