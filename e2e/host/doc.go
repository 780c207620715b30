// Package host holds end-to-end scenario 2: a WAF host where hostd, logged in
// to a real Vault with AppRole, renders the agent's keys and restarts the
// agent's unit in a real systemd user manager when the site's keys rotate.
//
// It owns only its tests; the Vault server, simulator and builds come from
// the harness, and it must not touch the host's own systemd.
package host
