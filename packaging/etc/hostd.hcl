# hostd configuration. The package installs this file once and never
# overwrites it on upgrade: edit it in place.
#
# Check it with:   hostd validate -config /etc/hostd/hostd.hcl
# Apply it with:   systemctl reload hostd    (or restart)

vault {
  address = "https://vault.example.com:8200"
  # ca_cert = "/etc/hostd/vault-ca.pem"
}

# hostd logs in with AppRole. Put this host's role-id and secret-id in these
# files, readable by the hostd user only (owner hostd, mode 0400); see
# /usr/share/doc/hostd/vault/approle-example.sh.
auto_auth {
  method "approle" {
    role_id_file   = "/etc/hostd/role-id"
    secret_id_file = "/etc/hostd/secret-id"
  }
}

template_config {
  refresh_interval = "30s"
  # Caps every retry delay of hostd, logins and restart retries included.
  max_backoff      = "5m"
}

# Edit the role and the site on the "secret" line of the template.
template {
  source      = "/etc/hostd/templates/agent.ctmpl"
  destination = "/etc/sigsci/agent.conf"
  perms       = "0600"
  unit        = "sigsci-agent.service"
}

# Restarts go over the system bus; the polkit rule installed with hostd lets
# the hostd user (try-)restart sigsci-agent.service and nothing else. A
# stopped agent is not started. A check command inside this block can confirm
# the agent works on new keys before they are kept:
#   check {
#     command = ["/usr/local/bin/check-agent", "--quick"]
#     timeout = "10s"
#   }
restart {
  bus   = "system"
  splay = "30s"
}

# hostd tells Vault which access key the agent runs (never a secret), for
# each sigsci creds secret it reads: it writes
# sigsci/fleet/<role>/sites/<site>/hosts/<host> after each restart that
# passed its health check, and again every interval. A retirement
# (vault delete sigsci/rotate/sites/<site>) waits for the hosts still on an
# old key. The host policy (/usr/share/doc/hostd/vault/host.hcl) allows it.
# On by default, as this machine's host name:
# report {
#   enabled  = true
#   host     = "web-1"
#   interval = "10m"
# }

telemetry {
  listen_address = "127.0.0.1:9464"
}

status {
  socket_path = "/run/hostd/hostd.sock"
}

log {
  level  = "info"
  format = "text"
}
