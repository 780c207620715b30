package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Programs are the binaries of one test run: the real Vault, and this
// repository's commands built fresh into a temporary directory, which is also
// the plugin directory of every Vault server the run starts.
type Programs struct {
	Vault string // the real Vault server and CLI
	Bin   string // directory holding the freshly built commands

	vaultErr error // Vault could not be built here: tests cannot run
	buildErr error // our commands do not build: tests fail
}

// Command returns the path of one of our freshly built commands.
func (p *Programs) Command(name string) string { return filepath.Join(p.Bin, name) }

// Require stops the test unless every program was built: it fails when our
// own commands did not build, and reports Vault missing through Unavailable.
func (p *Programs) Require(t testing.TB) {
	t.Helper()
	if p.buildErr != nil {
		t.Fatalf("building the commands under test: %v", p.buildErr)
	}
	if p.vaultErr != nil {
		Unavailable(t, "%v", p.vaultErr)
	}
}

// Main is the body of a test package's TestMain. It builds Vault if the cache
// has none, builds the named commands (cmd/<name>) into a temporary
// directory, fills p, runs the tests and removes the directory. Build problems
// do not stop Main: each test reports them through p.Require. After the
// last test it runs the secrets sweep (sweep.go) and fails the package if
// a kept output holds a secret.
//
//	var programs harness.Programs
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m, &programs, "vault-plugin-sigsci")) }
func Main(m *testing.M, p *Programs, commands ...string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()

	p.Vault, p.vaultErr = BuildVault(ctx, os.Stderr)

	bin, err := os.MkdirTemp("", "sigsci-e2e-bin-")
	if err != nil {
		p.buildErr = fmt.Errorf("creating the binaries directory: %w", err)
	} else {
		defer os.RemoveAll(bin)
		p.Bin = bin
		p.buildErr = BuildCommands(ctx, bin, commands...)
	}
	code := m.Run()
	if kept.report(os.Stderr) && code == 0 {
		code = 1
	}
	return code
}

// BuildCommands builds this repository's commands cmd/<name> into dir, from
// the current checkout, the way make build and the release do: static
// (CGO_ENABLED=0), stripped (-s -w) and with -trimpath, so that what the
// tests run, and the sizes the benchmark reports, are what ships.
func BuildCommands(ctx context.Context, dir string, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + string(filepath.Separator)}
	for _, name := range names {
		args = append(args, "./cmd/"+name)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %v in %s: %w\n%s", args, root, err, out)
	}
	return nil
}
