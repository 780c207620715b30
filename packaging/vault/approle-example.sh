#!/bin/sh
# approle-example.sh: give one WAF host an AppRole that can read one site's
# agent keys and nothing else, and write the host's role-id and secret-id.
#
# Run it as a Vault administrator (VAULT_ADDR, VAULT_TOKEN set) after
# register.sh; SITE is the Signal Sciences site the host serves:
#
#   SITE=www OUT=./www-host ./approle-example.sh
#
# then copy OUT/role-id and OUT/secret-id to the host:
#
#   install -o hostd -g hostd -m 0400 role-id secret-id /etc/hostd/
#
# The same steps by hand, for SITE=www:
#
#   vault auth enable approle
#   sed 's/<site-name>/www/g' host.hcl | vault policy write sigsci-host-www -
#   vault write auth/approle/role/sigsci-host-www token_policies=sigsci-host-www \
#       token_ttl=1h token_max_ttl=24h secret_id_ttl=0 secret_id_num_uses=0
#   vault read -field=role_id auth/approle/role/sigsci-host-www/role-id > role-id
#   vault write -f -field=secret_id auth/approle/role/sigsci-host-www/secret-id > secret-id
#
# hostd renews its token and logs in again with the secret-id when the token
# reaches token_max_ttl. Restrict where the secret-id may be used from with
# secret_id_bound_cidrs / token_bound_cidrs where the hosts' addresses are known.
set -eu

site=${SITE:?set SITE to the Signal Sciences site name the host serves}
out=${OUT:-.}
here=$(cd "$(dirname "$0")" && pwd)

case "$site" in
    *[!A-Za-z0-9._-]* | "") echo "SITE must be a site name (letters, digits, . _ -): $site" >&2; exit 2 ;;
esac

if ! vault auth list -format=json | grep -q '"approle/"'; then
    vault auth enable approle
fi

sed "s/<site-name>/$site/g" "$here/host.hcl" | vault policy write "sigsci-host-$site" -
vault write auth/approle/role/"sigsci-host-$site" token_policies="sigsci-host-$site" \
    token_ttl=1h token_max_ttl=24h secret_id_ttl=0 secret_id_num_uses=0

mkdir -p "$out"
umask 077
vault read -field=role_id auth/approle/role/"sigsci-host-$site"/role-id > "$out/role-id"
vault write -f -field=secret_id auth/approle/role/"sigsci-host-$site"/secret-id > "$out/secret-id"
echo "wrote $out/role-id and $out/secret-id for site $site"
