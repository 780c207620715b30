#!/bin/sh
# register.sh: install vault-plugin-sigsci into Vault, register it by its
# SHA-256 checksum, mount it at sigsci/ and write the operator policy.
#
# Run it where Vault's plugin_directory is writable (usually on the Vault
# server), with the vault CLI logged in as a Vault administrator:
#
#   export VAULT_ADDR=https://vault.example.com:8200 VAULT_TOKEN=...
#   VAULT_PLUGIN_DIR=/etc/vault/plugins ./register.sh vault-plugin-sigsci.tar.gz
#
# The same steps by hand (run in the plugin directory):
#
#   sha256sum -c --ignore-missing SHA256SUMS        # where the release was downloaded
#   tar xzvf vault-plugin-sigsci.tar.gz
#   vault plugin register -sha256=$(sha256sum vault-plugin-sigsci|cut -c-64) secret vault-plugin-sigsci
#   vault secrets enable -path=sigsci vault-plugin-sigsci
#   vault policy write sigsci-operator operator.hcl
#
# Upgrading is the same, with `vault plugin reload -type=secret
# -plugin=vault-plugin-sigsci` instead of `vault secrets enable`: the script
# does that when sigsci/ is already mounted. Running it twice is harmless.
set -eu

tarball=${1:-vault-plugin-sigsci.tar.gz}
plugin_dir=${VAULT_PLUGIN_DIR:?set VAULT_PLUGIN_DIR to the plugin_directory of the Vault server}
here=$(cd "$(dirname "$0")" && pwd)
tarball_dir=$(cd "$(dirname "$tarball")" && pwd)
tarball_name=$(basename "$tarball")

if [ -f "$tarball_dir/SHA256SUMS" ]; then
    echo "checking $tarball_name against SHA256SUMS"
    if ! (cd "$tarball_dir" && grep " [* ]\{0,1\}$tarball_name\$" SHA256SUMS | sha256sum -c -); then
        echo "register.sh: $tarball_name does not match SHA256SUMS beside it: not installing it" >&2
        exit 1
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && tar xzvf "$tarball_dir/$tarball_name")
install -m 0755 "$work/vault-plugin-sigsci" "$plugin_dir/vault-plugin-sigsci"

cd "$plugin_dir"
vault plugin register -sha256=$(sha256sum vault-plugin-sigsci|cut -c-64) secret vault-plugin-sigsci

if vault secrets list -format=json | grep -q '"sigsci/"'; then
    vault plugin reload -type=secret -plugin=vault-plugin-sigsci
else
    vault secrets enable -path=sigsci vault-plugin-sigsci
fi

vault policy write sigsci-operator "$here/operator.hcl"
