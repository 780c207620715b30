// Package packaging is the home of the release's packaging: the nfpm
// definition of hostd's .deb and .rpm, the systemd unit, the polkit rule, the
// example configuration, the maintainer scripts and the Vault side (plugin
// registration, policies, AppRole example). Its Go code is only the tests of
// what `make release` produces; it must not import any product package, so
// the tests see the product exactly as an operator installs it.
package packaging
