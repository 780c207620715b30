// Package host holds end-to-end scenario 2: a WAF host where hostd, logged in
// to a real Vault with AppRole, renders the agent's keys and restarts the
// agent's unit in a real systemd user manager when the site's keys rotate;
// scenario 3, faults on that host; and scenario 4, hostd as its package
// installs it, under the packaged hostd.service (packaged_test.go). Beside
// them: the fleet stories (fleet*_test.go), where several hosts report the
// keys their agents run and retirement waits for the last of them, and the
// shipped alerting rules evaluated by a real Prometheus that scrapes hostd
// (prometheus_test.go).
//
// It owns only its tests; the Vault server, simulator and builds come from
// the harness, and it must not touch the host's own systemd. Scenario 4
// alone changes the machine: it installs the hostd package (as root) and
// purges it after, and refuses to run where a hostd package is installed
// already; the package's maintainer scripts reach the test's manager, not
// the host's systemd.
package host
