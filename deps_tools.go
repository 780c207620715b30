//go:build tools

package tools

import (
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/coreos/go-systemd/v22/dbus"
	_ "github.com/hashicorp/consul-template/config"
	_ "github.com/hashicorp/consul-template/manager"
	_ "github.com/hashicorp/hcl/v2/gohcl"
	_ "github.com/hashicorp/hcl/v2/hclsimple"
	_ "github.com/hashicorp/vault/api"
	_ "github.com/hashicorp/vault/api/auth/approle"
	_ "github.com/hashicorp/vault/sdk/framework"
	_ "github.com/hashicorp/vault/sdk/logical"
	_ "github.com/hashicorp/vault/sdk/plugin"
	_ "github.com/hashicorp/vault/sdk/helper/locksutil"
	_ "github.com/hashicorp/go-plugin"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
)
