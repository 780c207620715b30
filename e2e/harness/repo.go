package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// rootModule is the module path of the repository the tests exercise.
const rootModule = "github.com/sigsci-keys/sigsci-keys"

// RepoRoot returns the root of this checkout: the nearest directory at or
// above the working directory whose go.mod declares the root module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		if declaresModule(filepath.Join(dir, "go.mod"), rootModule) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("finding the repository root: no go.mod of module %s above the working directory", rootModule)
		}
		dir = parent
	}
}

// declaresModule reports whether the go.mod at path declares module name.
func declaresModule(path, name string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == name
		}
	}
	return false
}
