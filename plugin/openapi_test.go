package plugin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// openAPIOperation is one operation of the mount's OpenAPI document.
type openAPIOperation struct {
	method, path, id string
}

func (o openAPIOperation) String() string { return o.method + " " + o.path + " -> " + o.id }

// openAPIBackend is a mount set up as Vault sets one up, without an API.
func openAPIBackend(t *testing.T) *backend {
	t.Helper()
	b := newBackend("v0.1.0", newSigsciClient)
	conf := logical.TestBackendConfig()
	conf.System.(*logical.StaticSystemView).PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "1.19.0"}
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	return b
}

// openAPIDocument asks the backend for its OpenAPI document the way Vault's
// sys/internal/specs/openapi does.
func openAPIDocument(t *testing.T, b *backend) *framework.OASDocument {
	t.Helper()
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.HelpOperation,
		Storage:   &logical.InmemStorage{},
		// Vault passes the plugin's type; it would prefix any operation id
		// that DisplayAttrs leave to be made from the path.
		Data: map[string]interface{}{"requestResponsePrefix": "vault-plugin-sigsci"},
	})
	if err != nil {
		t.Fatalf("help request: %v", err)
	}
	doc, ok := resp.Data["openapi"].(*framework.OASDocument)
	if !ok {
		t.Fatalf("the help answer holds no OpenAPI document: %T", resp.Data["openapi"])
	}
	return doc
}

// openAPIOperations returns the operations of the document, sorted by path.
func openAPIOperations(doc *framework.OASDocument) []openAPIOperation {
	var ops []openAPIOperation
	for path, item := range doc.Paths {
		for method, op := range map[string]*framework.OASOperation{
			"GET": item.Get, "POST": item.Post, "DELETE": item.Delete, "PATCH": item.Patch,
		} {
			if op != nil {
				ops = append(ops, openAPIOperation{method: method, path: path, id: op.OperationID})
			}
		}
	}
	slices.SortFunc(ops, func(a, b openAPIOperation) int {
		return strings.Compare(a.path+" "+a.method, b.path+" "+b.method)
	})
	return ops
}

// declaredOperationIDs returns, for one operation of a path, the operation
// ids its DisplayAttrs spell out (one per "|" alternative of the suffix), or
// an error if they leave part of the id to be made from the path pattern.
func declaredOperationIDs(p *framework.Path, op logical.Operation, h framework.OperationHandler) ([]string, error) {
	var prefix, verb, suffix string
	for _, attrs := range []*framework.DisplayAttributes{h.Properties().DisplayAttrs, p.DisplayAttrs} {
		if attrs == nil {
			continue
		}
		prefix = cmp.Or(prefix, attrs.OperationPrefix)
		verb = cmp.Or(verb, attrs.OperationVerb)
		suffix = cmp.Or(suffix, attrs.OperationSuffix)
	}
	if prefix != operationPrefixSigsci {
		return nil, fmt.Errorf("operation prefix %q, want %q", prefix, operationPrefixSigsci)
	}
	if verb == "" && suffix == "" {
		return nil, fmt.Errorf("neither an operation verb nor a suffix: the id would be made from the path")
	}
	if verb == "" {
		verb = string(op)
		if op == logical.UpdateOperation {
			verb = "write"
		}
	}
	var ids []string
	for _, s := range strings.Split(suffix, "|") {
		ids = append(ids, strings.Trim(strings.Join([]string{prefix, verb, s}, "-"), "-"))
	}
	return ids, nil
}

func TestOpenAPIEveryOperationIsNamedByItsDisplayAttrs(t *testing.T) {
	b := openAPIBackend(t)
	declared := map[string]string{} // operation id -> the path operation that declares it
	for _, p := range b.Paths {
		for op, h := range p.Operations {
			if op == logical.CreateOperation && p.Operations[logical.UpdateOperation] != nil {
				continue // OpenAPI folds create into update: one POST, one id
			}
			ids, err := declaredOperationIDs(p, op, h)
			if err != nil {
				t.Errorf("path %s, %s: %v", p.Pattern, op, err)
				continue
			}
			for _, id := range ids {
				declared[id] = fmt.Sprintf("%s %s", op, p.Pattern)
			}
		}
	}

	ops := openAPIOperations(openAPIDocument(t, b))
	seen := map[string]openAPIOperation{}
	for _, o := range ops {
		t.Logf("%s", o)
		if _, ok := declared[o.id]; !ok {
			t.Errorf("%s %s: operation id %q is not one the DisplayAttrs declare (made from the path?)", o.method, o.path, o.id)
		}
		if first, dup := seen[o.id]; dup {
			t.Errorf("operation id %q is used twice: %s and %s", o.id, first, o)
		}
		seen[o.id] = o
	}
	for id, where := range declared {
		if _, ok := seen[id]; !ok {
			t.Errorf("%s declares operation id %q, which the OpenAPI document lacks", where, id)
		}
	}
}

// The UI and generated clients read field labels and sensitivity from the
// request schema; the token must be masked there.
func TestOpenAPIRoleWriteSchemaLabelsTheFieldsAndMasksTheToken(t *testing.T) {
	doc := openAPIDocument(t, openAPIBackend(t))
	schema, ok := doc.Components.Schemas["SigsciWriteRoleRequest"]
	if !ok {
		t.Fatal("the document has no SigsciWriteRoleRequest schema")
	}
	for field, name := range map[string]string{"token": "API Token", "email": "API User Email", "api_url": "API URL"} {
		prop, ok := schema.Properties[field]
		if !ok || prop.DisplayAttrs == nil {
			t.Errorf("%s: no display attributes in the request schema", field)
			continue
		}
		if prop.DisplayAttrs.Name != name {
			t.Errorf("%s: display name %q, want %q", field, prop.DisplayAttrs.Name, name)
		}
		if want := field == "token"; prop.DisplayAttrs.Sensitive != want {
			t.Errorf("%s: sensitive = %t, want %t", field, prop.DisplayAttrs.Sensitive, want)
		}
	}
}
