package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// vaultModuleFiles are the files of the e2e/vault module whose content decides
// which Vault binary it builds. Changing any of them (a new pin) selects a new
// cache entry, so the next run builds again.
var vaultModuleFiles = []string{"go.mod", "go.sum", "main.go"}

// VaultModuleDir returns the directory of the module that builds Vault.
func VaultModuleDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "e2e", "vault"), nil
}

// VaultCacheRoot returns the directory holding built Vault binaries:
// $XDG_CACHE_HOME/sigsci-keys, or $HOME/.cache/sigsci-keys.
func VaultCacheRoot() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locating the build cache: %w", err)
	}
	return filepath.Join(base, "sigsci-keys"), nil
}

// VaultBinaryPath returns where the Vault binary built from the module in
// moduleDir is cached: <cache root>/vault-<key>/vault, where key is a hash of
// the module's files. The binary may not exist yet.
func VaultBinaryPath(moduleDir string) (string, error) {
	key, err := vaultModuleKey(moduleDir)
	if err != nil {
		return "", err
	}
	root, err := VaultCacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "vault-"+key, "vault"), nil
}

// vaultModuleKey hashes the names and contents of the module's files.
func vaultModuleKey(moduleDir string) (string, error) {
	h := sha256.New()
	for _, name := range vaultModuleFiles {
		data, err := os.ReadFile(filepath.Join(moduleDir, name))
		if err != nil {
			return "", fmt.Errorf("reading the Vault build module: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// BuildVault returns the path of the real Vault binary for this checkout,
// building it first when the cache has none for the module's current content.
// Concurrent callers (several test packages) wait for one build. progress
// receives a notice before a build and go's own output while it runs.
func BuildVault(ctx context.Context, progress io.Writer) (string, error) {
	moduleDir, err := VaultModuleDir()
	if err != nil {
		return "", err
	}
	bin, err := VaultBinaryPath(moduleDir)
	if err != nil {
		return "", err
	}
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", fmt.Errorf("creating the Vault build cache: %w", err)
	}
	unlock, err := lockFile(ctx, bin+".lock", progress)
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // another process built it while we waited
		return bin, nil
	}
	if err := goBuildVault(ctx, moduleDir, bin, progress); err != nil {
		return "", err
	}
	return bin, nil
}

// goBuildVault builds the module into bin, atomically: a failed or
// interrupted build leaves no binary behind.
func goBuildVault(ctx context.Context, moduleDir, bin string, progress io.Writer) error {
	fmt.Fprintf(progress, "building the real Vault server and CLI from %s into %s\n", moduleDir, bin)
	fmt.Fprintf(progress, "the first build takes about 15 minutes on 2 cores (downloads, then compiling); later runs reuse it\n")
	start := time.Now()
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	defer os.Remove(tmp)

	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-trimpath", "-ldflags=-s -w", "-o", tmp, ".")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as Vault's own releases
	cmd.Stdout = progress
	cmd.Stderr = progress
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building Vault in %s (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'): %w", moduleDir, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("installing the built Vault binary: %w", err)
	}
	fmt.Fprintf(progress, "built Vault in %s: %s\n", time.Since(start).Round(time.Second), bin)
	return nil
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// lockFile takes an exclusive advisory lock on path, waiting until it is free
// or ctx ends. The returned func releases it.
func lockFile(ctx context.Context, path string, progress io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the build lock: %w", err)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for waited := false; ; waited = true {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !waited {
			fmt.Fprintf(progress, "waiting for another process building Vault (lock %s)\n", path)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another Vault build to finish: %w", ctx.Err())
		}
	}
}
