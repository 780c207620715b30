package vaultcli

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// mountPrefix is where the documentation enables the plugin, as the OpenAPI
// document of the server spells its paths.
const mountPrefix = "/sigsci/"

// operationIDRe is the shape of the plugin's operation ids: the engine's
// prefix, then kebab-case words.
var operationIDRe = regexp.MustCompile(`^sigsci(-[a-z0-9]+)+$`)

// TestOpenAPINamesEveryOperationOfTheMount enables the plugin as documented,
// reads the real server's OpenAPI document and checks that every operation of
// the sigsci/ mount has an operation id of its own, chosen by the plugin and
// not made up from the path, so that clients generated from the document get
// names like SigsciReadAgentKeys.
func TestOpenAPINamesEveryOperationOfTheMount(t *testing.T) {
	d := newDesk(t)
	d.install(t)
	ops := d.openAPIOperations(t)

	uses := map[string]int{} // operation id -> operations of the whole server using it
	for _, o := range ops {
		uses[o.id]++
	}
	var mine []openAPIOperation
	for _, o := range ops {
		if strings.HasPrefix(o.path, mountPrefix) {
			mine = append(mine, o)
			t.Logf("%-6s %-36s %s", o.method, o.path, o.id)
		}
	}
	if len(mine) == 0 {
		t.Fatalf("the OpenAPI document has no operation under %s", mountPrefix)
	}
	for _, o := range mine {
		if o.id == "" {
			t.Errorf("%s %s has no operationId", o.method, o.path)
			continue
		}
		if !operationIDRe.MatchString(o.id) {
			t.Errorf("%s %s: operationId %q is not sigsci- and kebab-case words", o.method, o.path, o.id)
		}
		if strings.HasSuffix(o.id, "-"+pathWords(o.path)) {
			t.Errorf("%s %s: operationId %q is made from the path", o.method, o.path, o.id)
		}
		if uses[o.id] > 1 {
			t.Errorf("%s %s: operationId %q is used by %d operations of the server", o.method, o.path, o.id, uses[o.id])
		}
	}

	// The operations behind the documented commands, by their ids.
	for _, want := range []struct {
		command      string
		method, path string
		id           string
	}{
		{docListRoles, "get", "/sigsci/role", "sigsci-read-roles"},
		{docListRolesList, "get", "/sigsci/role/", "sigsci-list-roles"},
		{docCreateRole, "post", "/sigsci/role/{name}", "sigsci-write-role"},
		{docReadRole, "get", "/sigsci/role/{name}", "sigsci-read-role"},
		{docDeleteRole, "delete", "/sigsci/role/{name}", "sigsci-delete-role"},
		{docCopySite, "post", "/sigsci/creds/{role}/sites/{site}", "sigsci-copy-agent-keys"},
		{docCopyAll, "post", "/sigsci/creds/{role}/sites", "sigsci-copy-all-agent-keys"},
		{docListKeys, "get", "/sigsci/creds/{role}/sites", "sigsci-read-all-agent-keys"},
		{docReadKeys, "get", "/sigsci/creds/{role}/sites/{site}", "sigsci-read-agent-keys"},
		{docRotate, "post", "/sigsci/rotate/sites/{site}", "sigsci-rotate-agent-keys"},
		{docRetire, "delete", "/sigsci/rotate/sites/{site}", "sigsci-retire-non-primary-agent-keys"},
		{docDeleteKeys, "delete", "/sigsci/creds/{role}/sites/{site}", "sigsci-delete-agent-keys"},
	} {
		i := slices.IndexFunc(mine, func(o openAPIOperation) bool { return o.method == want.method && o.path == want.path })
		if i < 0 {
			t.Errorf("%s: the OpenAPI document has no %s %s", want.command, want.method, want.path)
			continue
		}
		if got := mine[i].id; got != want.id {
			t.Errorf("%s: %s %s has operationId %q, want %q", want.command, want.method, want.path, got, want.id)
		}
	}
}

// openAPIOperation is one operation of the server's OpenAPI document.
type openAPIOperation struct {
	method, path, id string
}

// openAPIOperations reads the server's OpenAPI document with the CLI, as the
// root token, and returns its operations in path order. The document is the
// raw answer, not a secret, hence -format=raw.
func (d *desk) openAPIOperations(t *testing.T) []openAPIOperation {
	t.Helper()
	out := d.sh(t, "vault read -format=raw sys/internal/specs/openapi").OK(t)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("decoding the OpenAPI document: %v", err)
	}

	var ops []openAPIOperation
	for path, item := range doc.Paths {
		for _, method := range []string{"get", "post", "put", "patch", "delete"} {
			raw, ok := item[method]
			if !ok {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("decoding %s %s: %v", method, path, err)
			}
			ops = append(ops, openAPIOperation{method: method, path: path, id: op.OperationID})
		}
	}
	slices.SortFunc(ops, func(a, b openAPIOperation) int {
		return strings.Compare(a.path+" "+a.method, b.path+" "+b.method)
	})
	return ops
}

// pathWords is the end Vault gives an operation id that its plugin did not
// name: the words of the path inside the mount, joined by dashes
// ("creds-role-sites-site" for /sigsci/creds/{role}/sites/{site}).
func pathWords(path string) string {
	words := strings.FieldsFunc(strings.TrimPrefix(path, mountPrefix), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	})
	return strings.ToLower(strings.Join(words, "-"))
}
