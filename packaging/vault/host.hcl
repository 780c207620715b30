# sigsci-host-<site-name>: what one WAF host (hostd or Vault Agent) needs:
# read the agent keys of ONE site and report which key its agent runs,
# nothing else. No listing, no other site, no roles, no copy, no rotation,
# no reading of the fleet, no deleting a report.
#
# A template: replace <site-name> with the site the host serves (and
# vault-user with the role, if yours is named differently), then
#
#   sed 's/<site-name>/www/g' host.hcl | vault policy write sigsci-host-www -
#
# Renewing and looking up its own token comes from Vault's "default" policy,
# which AppRole tokens carry unless token_no_default_policy is set.
path "sigsci/creds/vault-user/sites/<site-name>" {
  capabilities = ["read"]
}

# hostd reports the access key (never the secret) its agent runs:
#   vault write sigsci/fleet/vault-user/sites/<site-name>/hosts/<host> access_key=...
path "sigsci/fleet/vault-user/sites/<site-name>/hosts/*" {
  capabilities = ["update"]
}
