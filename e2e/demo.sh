#!/usr/bin/env bash
# make demo: the whole key flow on this machine, with no Signal Sciences
# account. It starts a systemd user manager (standing in for the host's
# systemd), the Signal Sciences simulator, a Vault dev server with the plugin
# registered the documented way, a stand-in WAF agent as sigsci-agent.service,
# and hostd rendering the agent's keys and restarting it over D-Bus; then it
# copies, rotates and retires a site's keys and shows the agent following
# along. Ctrl-C (or the end) stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
GO=${GO:-go}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
wait_for() { # wait_for DESCRIPTION COMMAND... : poll until the command succeeds, 30 s at most
  local what=$1; shift
  for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; return 1
}

# What the demo needs: a real systemd (run as a user manager in a private
# mount namespace, which takes root) and a few everyday tools.
missing=()
[ "$(id -u)" = 0 ] || missing+=("root: the systemd user manager runs in a private mount namespace (unshare -m); run as root")
[ -x /lib/systemd/systemd ] || missing+=("/lib/systemd/systemd: apt-get install systemd")
command -v systemctl >/dev/null || missing+=("systemctl: apt-get install systemd")
for tool in unshare setsid; do command -v $tool >/dev/null || missing+=("$tool: apt-get install util-linux"); done
command -v dbus-daemon >/dev/null || missing+=("dbus-daemon: apt-get install dbus")
[ -e /usr/lib/systemd/user/dbus.socket ] || missing+=("the user bus (dbus.socket): apt-get install dbus-user-session")
command -v curl >/dev/null || missing+=("curl: apt-get install curl")
command -v python3 >/dev/null || missing+=("python3: apt-get install python3")
if [ ${#missing[@]} -gt 0 ]; then
  echo "make demo cannot run on this machine; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

if [ -z "${SIGSCI_VAULT_BIN:-}" ]; then
  say "Building Vault (cached; the first build takes about 15 minutes and shows its progress)"
  SIGSCI_VAULT_BIN=$(cd e2e && "$GO" run ./cmd/vaultbin)
fi

work=$(mktemp -d)
pids=()    # background processes, stopped newest first
hostd_pid= # stopped before the others, while the user manager still answers it
# fd 3 is the terminal's stderr: cleanup may run while a command's output is
# redirected (Ctrl-C during wait_for), and must still be heard.
exec 3>&2
cleanup() {
  local status=$?
  trap '' INT # a second Ctrl-C must not cut the shutdown short
  if [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then
    for log in hostd usermanager sim; do # not vault.log: the dev server prints its root token
      [ -s "$work/$log.log" ] && { echo "--- last lines of $log.log"; tail -n 15 "$work/$log.log"; }
    done >&3
  fi
  if [ -n "$hostd_pid" ] || [ ${#pids[@]} -gt 0 ]; then
    echo "stopping hostd, then the user manager with the agent, Vault and the simulator" >&3
  fi
  if [ -n "$hostd_pid" ]; then kill "$hostd_pid" 2>/dev/null || true; wait "$hostd_pid" 2>/dev/null || true; fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/bin" "$work/plugins" "$work/etc"
cp "$repo/bin/vault-plugin-sigsci" "$work/plugins/"

say "Building the stand-in WAF agent (e2e/fakeagent) and the user manager launcher"
(cd e2e && "$GO" build -o "$work/bin/" ./fakeagent ./cmd/usermanager)

say "Starting a systemd user manager (this host's systemd; PID 1 here is not systemd)"
# In a session of its own, so that Ctrl-C reaches it only through cleanup,
# after hostd has stopped: hostd would otherwise wait on a vanished manager.
setsid "$work/bin/usermanager" -dir "$work/sd" -env-file "$work/sd.env" >/dev/null 2>"$work/usermanager.log" &
manager_pid=$!
pids+=($manager_pid)
until [ -s "$work/sd.env" ]; do # the launcher gives up by itself after 30 s
  kill -0 "$manager_pid" 2>/dev/null || { echo "the user manager did not start" >&2; exit 1; }
  sleep 0.1
done
set -a; . "$work/sd.env"; set +a # systemctl --user and hostd now reach this manager
echo "user manager up; its bus: $DBUS_SESSION_BUS_ADDRESS"

say "Starting the Signal Sciences simulator (corp demo-corp, sites www and api)"
"$repo/bin/sigsci-sim" -listen 127.0.0.1:0 -corp demo-corp -user vault@demo-corp.example \
  -token-file <(printf demo-api-token) -sites www,api -addr-file "$work/sim.addr" >/dev/null 2>"$work/sim.log" &
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

say "Letting a host read its own site and report its agent's key: an AppRole for hostd"
vault auth enable approle >/dev/null
sed 's/<site-name>/www/g' "$repo/packaging/vault/host.hcl" | vault policy write waf-www - >/dev/null
vault write auth/approle/role/waf-www token_policies=waf-www token_ttl=10m >/dev/null
vault read -field=role_id auth/approle/role/waf-www/role-id > etc/role-id
vault write -f -field=secret_id auth/approle/role/waf-www/secret-id > etc/secret-id
chmod 600 etc/role-id etc/secret-id

say "Installing the agent as sigsci-agent.service (it checks its keys at the simulator when it starts)"
cat > sigsci-agent.service <<UNIT
[Unit]
Description=Signal Sciences agent (the demo's stand-in)

[Service]
ExecStart=$work/bin/fakeagent -config $work/agent.conf -check-url $sim/sim/agent/check -state-file $work/agent.state
UNIT
run systemctl --user link "$work/sigsci-agent.service"

# The agent records the access key it runs with, and its pid, in agent.state.
agent_key() { sed -n 's/.*"accessKey":"\([^"]*\)".*/\1/p' agent.state 2>/dev/null; }
agent_pid() { sed -n 's/.*"pid":\([0-9]*\).*/\1/p' agent.state 2>/dev/null; }
agent_runs_on() { [ "$(agent_key)" = "$1" ]; }
# hostd counts each restart once the unit has stayed up after it.
restarts_done() {
  curl -s "http://$metrics/metrics" |
    awk '/^hostd_unit_restarts_total\{result="done",unit="sigsci-agent.service"\}/ { print $2 }'
}
restarts_done_are() { [ "$(restarts_done)" = "$1" ]; }

say "hostd's configuration: renders agent.conf from templates/agent.ctmpl, restarts sigsci-agent.service on a change"
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
  unit        = "sigsci-agent.service"
}
restart {
  bus      = "user"
  debounce = "0s"
  splay    = "0s"
}
report {
  host     = "demo-host"
  interval = "5s"
}
telemetry { listen_address = "$metrics" }
status { socket_path = "$work/hostd.sock" }
HCL
sed -n '/^template {/,/^}/p; /^restart {/,/^}/p; /^report {/,/^}/p' etc/hostd.hcl
"$repo/bin/hostd" validate -config etc/hostd.hcl

say "First boot: hostd render writes agent.conf once, then the agent starts on it"
# hostd restarts only an agent that runs (an agent an operator stopped stays
# stopped), so at first boot the one-shot render writes the file and the
# boot order starts the agent; the daemon then keeps it current.
run "$repo/bin/hostd" render -config etc/hostd.hcl
echo "agent.conf (secret elided):"; sed 's/^secretaccesskey.*/secretaccesskey = "…"/' agent.conf
run systemctl --user start sigsci-agent.service
primary=$(vault read -field=accessKey /sigsci/creds/vault-user/sites/www)
wait_for "the agent to run on $primary" agent_runs_on "$primary"
run systemctl --user status sigsci-agent.service --no-pager --lines=0 || true

say "Starting hostd: it finds agent.conf current and the agent running on it"
"$repo/bin/hostd" run -config etc/hostd.hcl 2>"$work/hostd.log" &
hostd_pid=$!
wait_for "hostd's first render" "$repo/bin/hostd" status -socket "$work/hostd.sock"
on_primary() { vault read -field=on_primary /sigsci/fleet/vault-user/sites/www | grep -q demo-host; }
wait_for "hostd to report the key the agent runs" on_primary
run vault read /sigsci/fleet/vault-user/sites/www
echo "agent.state: access key $(agent_key), pid $(agent_pid) (Vault's primary: $primary)"
curl -s "http://$metrics/metrics" | grep '^hostd_' > metrics.before

say "Rotating www's keys: a new primary set; the old one stays valid until retired"
before=$primary
before_secret=$(vault read -field=secretKey /sigsci/creds/vault-user/sites/www)
before_pid=$(agent_pid)
start=$(now)
run vault write -f /sigsci/rotate/sites/www
after=$(vault read -field=accessKey /sigsci/creds/vault-user/sites/www)
echo "retiring now would take demo-host's agent down; the guard refuses:"
run vault delete /sigsci/rotate/sites/www || true
echo "Vault's primary is now $after (was $before); waiting for hostd to notice (refresh every 5 s)"
wait_for "hostd to render the new key" grep -q "$after" agent.conf
rendered=$(since "$start")
wait_for "the agent to run on the new key" agent_runs_on "$after"
printf 'hostd rendered the new key %s s after the rotate command; the agent runs on it %s s after it\n' \
  "$rendered" "$(since "$start")"
echo "agent.state: access key $(agent_key), pid $(agent_pid) (was pid $before_pid: restarted by hostd over D-Bus)"
wait_for "hostd to see the agent stay up" restarts_done_are 1

say "Retiring the old key set once every host reports the new one"
wait_for "hostd to report the new key" on_primary
run vault read /sigsci/fleet/vault-user/sites/www
run vault delete /sigsci/rotate/sites/www
echo "the old pair at the simulator's agent-key check (the secret goes on stdin, not shown):"
printf '$ curl -s %s/sim/agent/check -d '\''{"accesskeyid":"%s","secretaccesskey":"…"}'\''\n' "$sim" "$before"
printf '{"accesskeyid":"%s","secretaccesskey":"%s"}' "$before" "$before_secret" |
  curl -s "$sim/sim/agent/check" -H 'Content-Type: application/json' --data-binary @-; echo
run systemctl --user is-active sigsci-agent.service
echo "agent.state: access key $(agent_key), pid $(agent_pid)"

say "hostd status"
"$repo/bin/hostd" status -socket "$work/hostd.sock" || true

say "hostd metrics that changed with the rotation (before -> after)"
curl -s "http://$metrics/metrics" | grep '^hostd_' > metrics.after
# Series are "name{labels} value"; leave out histogram buckets and timestamps.
grep -vE '_bucket|timestamp' metrics.after | awk '
  NR == FNR { was[$1] = $2; next }
  was[$1] != $2 { printf "  %-72s %s -> %s\n", $1, ($1 in was) ? was[$1] : "(new)", $2 }
' metrics.before -

say "hostd's footprint"
printf 'binary %s MB, resident memory %s\n' "$(( $(stat -c %s "$repo/bin/hostd") / 1000000 ))" \
  "$(awk '/^VmRSS/ {print $2, $3}' "/proc/$hostd_pid/status")"

say "Done in ${SECONDS} s: stopping everything."
