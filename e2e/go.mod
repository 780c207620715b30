// End-to-end tests: the real Vault server and CLI (built by ./vault, its own
// module) driving the plugin and the simulator built from the main module.
module github.com/sigsci-keys/sigsci-keys/e2e

go 1.26.4

require github.com/sigsci-keys/sigsci-keys v0.0.0

require (
	github.com/coreos/go-systemd/v22 v22.7.0 // indirect
	github.com/godbus/dbus/v5 v5.1.0 // indirect
)

replace github.com/sigsci-keys/sigsci-keys => ../
