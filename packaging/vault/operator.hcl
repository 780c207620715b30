# sigsci-operator: what an operator needs to run the sigsci secrets engine
# mounted at sigsci/: manage roles (API identities), copy keys from the
# Signal Sciences API, read them, rotate them and retire old ones.
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

# vault write -f sigsci/rotate/sites/<site>, vault delete sigsci/rotate/sites/<site>
path "sigsci/rotate/sites/*" {
  capabilities = ["create", "update", "delete"]
}
