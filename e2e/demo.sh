#!/usr/bin/env bash
# make demo: the whole key flow on this machine, with no Signal Sciences
# account. It starts the Signal Sciences simulator, a Vault dev server with the
# plugin registered the documented way, and hostd rendering the agent's
# configuration; then copies, rotates and retires a site's keys and shows
# hostd following along. Ctrl-C (or the end) stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

: "${SIGSCI_VAULT_BIN:?run through make demo, which builds Vault first}"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for DESCRIPTION COMMAND... : poll until the command succeeds, 30 s at most
  local what=$1; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; return 1
}

mkdir -p "$work/plugins" "$work/etc"
cp "$repo/bin/vault-plugin-sigsci" "$work/plugins/"

say "Starting the Signal Sciences simulator (corp demo-corp, sites www and api)"
"$repo/bin/sigsci-sim" -listen "127.0.0.1:$(free_port)" -corp demo-corp -user vault@demo-corp.example \
  -token-file <(printf demo-api-token) -sites www,api -addr-file "$work/sim.addr" 2>"$work/sim.log" &
pids+=($!)
wait_for "the simulator" test -s "$work/sim.addr"
sim=$(cat "$work/sim.addr"); echo "simulator at $sim"

say "Starting a Vault dev server with a plugin directory"
export VAULT_ADDR="http://127.0.0.1:$(free_port)" VAULT_TOKEN="demo-root-$RANDOM$RANDOM"
printf 'plugin_directory = "%s"\n' "$work/plugins" > "$work/vault.hcl"
HOME=$work "$SIGSCI_VAULT_BIN" server -dev -dev-root-token-id="$VAULT_TOKEN" \
  -dev-listen-address="${VAULT_ADDR#http://}" -config "$work/vault.hcl" >"$work/vault.log" 2>&1 &
pids+=($!)
vault() { HOME=$work "$SIGSCI_VAULT_BIN" "$@"; }
wait_for "Vault" vault status
echo "Vault at $VAULT_ADDR"

say "Installing the plugin, as the documentation says"
cd "$work/plugins"
run vault plugin register -sha256="$(sha256sum vault-plugin-sigsci | cut -c-64)" secret vault-plugin-sigsci
run vault secrets enable -path=sigsci vault-plugin-sigsci
cd "$work"
printf demo-api-token > token.txt

say "Creating the role (the API token is write-only)"
run vault write -f /sigsci/role/vault-user corp=demo-corp email=vault@demo-corp.example token=@token.txt api_url="$sim/api/v0"
run vault read /sigsci/role/vault-user

say "Copying every site's keys into Vault"
run vault write -f /sigsci/creds/vault-user/sites/
run vault read -field=accessKey /sigsci/creds/vault-user/sites/www

say "Letting a host read only its own site: an AppRole for hostd"
vault auth enable approle >/dev/null
vault policy write waf-www - >/dev/null <<'POLICY'
path "sigsci/creds/vault-user/sites/www" { capabilities = ["read"] }
POLICY
vault write auth/approle/role/waf-www token_policies=waf-www token_ttl=10m >/dev/null
vault read -field=role_id auth/approle/role/waf-www/role-id > etc/role-id
vault write -f -field=secret_id auth/approle/role/waf-www/secret-id > etc/secret-id
chmod 600 etc/role-id etc/secret-id

say "Starting hostd: renders agent.conf from templates/agent.ctmpl"
metrics="127.0.0.1:$(free_port)"
cat > etc/hostd.hcl <<HCL
vault { address = "$VAULT_ADDR" }
auto_auth {
  method "approle" {
    role_id_file   = "$work/etc/role-id"
    secret_id_file = "$work/etc/secret-id"
  }
}
template_config { refresh_interval = "5s" }
template {
  source      = "$repo/templates/agent.ctmpl"
  destination = "$work/agent.conf"
}
telemetry { listen_address = "$metrics" }
status { socket_path = "$work/hostd.sock" }
HCL
"$repo/bin/hostd" validate -config etc/hostd.hcl
"$repo/bin/hostd" run -config etc/hostd.hcl 2>"$work/hostd.log" &
hostd_pid=$!
pids+=($hostd_pid)
wait_for "hostd's first render" grep -q accesskeyid agent.conf
echo "agent.conf (secret elided):"; sed 's/^secretaccesskey.*/secretaccesskey = "…"/' agent.conf

say "Rotating www's keys: a new primary set; the old one stays valid until retired"
before=$(vault read -field=accessKey /sigsci/creds/vault-user/sites/www)
run vault write -f /sigsci/rotate/sites/www
after=$(vault read -field=accessKey /sigsci/creds/vault-user/sites/www)
start=$(date +%s.%N)
wait_for "hostd to render the new key" grep -q "$after" agent.conf
printf 'hostd rendered the new access key %s %.1f s after the rotation (was %s)\n' \
  "$after" "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$before"

say "Retiring the old key set at the API and in Vault"
run vault delete /sigsci/rotate/sites/www

say "hostd status"
"$repo/bin/hostd" status -socket "$work/hostd.sock" || true

say "hostd's footprint"
printf 'binary %s MB, resident memory %s\n' "$(( $(stat -c %s "$repo/bin/hostd") / 1000000 ))" \
  "$(awk '/^VmRSS/ {print $2, $3}' "/proc/$hostd_pid/status")"

say "hostd metrics (renders and auth)"
curl -s "http://$metrics/metrics" | grep -E '^hostd_(authenticated|auth_attempts_total|template_renders_total|vault_requests_total)' || true

say "Done: stopping the simulator, Vault and hostd."
