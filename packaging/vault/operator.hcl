# sigsci-operator: what an operator needs to run the sigsci secrets engine
# mounted at sigsci/: manage roles (API identities), copy keys from the
# Signal Sciences API, read them, rotate them, retire old ones and see which
# key each host runs.
# It grants nothing outside sigsci/ and nothing in sys/ (registering the
# plugin and mounting it stay with Vault's administrators).
#
#   vault policy write sigsci-operator operator.hcl

# vault read sigsci/role/ (the CLI asks for sigsci/role, without the slash)
path "sigsci/role" {
  capabilities = ["read", "list"]
}

# vault list sigsci/role, and vault write/read/delete sigsci/role/<role>
path "sigsci/role/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# vault write -f sigsci/creds/<role>/sites/[<site>], vault read ..., vault delete ...
path "sigsci/creds/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# vault write -f sigsci/rotate/sites/<site>, vault read ..., vault delete ...
path "sigsci/rotate/sites/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# The same for one role: sigsci/rotate/<role>/sites/<site>. To limit an
# operator to one role, grant sigsci/rotate/<role>/sites/* instead of both
# rotate stanzas.
path "sigsci/rotate/+/sites/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# The fleet: vault read sigsci/fleet/<role>/sites/[<site>],
# vault list sigsci/fleet/<role>/sites/<site>/hosts, and reading or deleting
# (a decommissioned host) one host's report. Reporting is the hosts' job.
path "sigsci/fleet/*" {
  capabilities = ["read", "list", "delete"]
}
