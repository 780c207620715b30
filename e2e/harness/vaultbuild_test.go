package harness

import (
	"os"
	"path/filepath"
	"testing"
)

func TestVaultCacheKeyFollowsTheModulePins(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\nrequire github.com/hashicorp/vault v1.19.0\n")
	write("go.sum", "sum-a\n")
	write("main.go", "package main\n")
	first, err := vaultModuleKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := vaultModuleKey(dir)
	if first != again {
		t.Fatalf("key is not stable: %s then %s", first, again)
	}
	write("go.sum", "sum-b\n")
	changed, _ := vaultModuleKey(dir)
	if changed == first {
		t.Fatalf("changing go.sum kept the cache key %s", first)
	}
	t.Setenv("XDG_CACHE_HOME", "/cache-root")
	path, err := VaultBinaryPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/cache-root/sigsci-keys/vault-" + changed + "/vault"; path != want {
		t.Fatalf("binary path %s, want %s", path, want)
	}
}

func TestMissingModuleFileIsAnError(t *testing.T) {
	if _, err := vaultModuleKey(t.TempDir()); err == nil {
		t.Fatal("no error for a directory without go.mod")
	}
}
