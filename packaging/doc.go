// Package packaging is the home of the release's packaging: the nfpm
// definition of hostd's .deb and .rpm, the systemd unit, the polkit rule, the
// example configuration, the maintainer scripts, the Prometheus rules and
// the Vault side (plugin registration, policies, AppRole example). Its Go
// code is the nfpm command that builds the packages (packaging/nfpm) and
// the tests of what `make release` produces (and of the rules, with
// promtool). The tests use no product package but the host test
// helpers (hostd/systemdtest for a real systemd manager, hostd/hosttest for
// reading files), so they see the product exactly as an
// operator installs it; they must not change the product.
package packaging
