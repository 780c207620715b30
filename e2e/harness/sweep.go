package harness

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The secrets sweep. Tests keep what the product showed (hostd's logs,
// metrics and status, Vault's server log) and every secret they met; after
// the package's last test, Main searches all of it at once for every secret
// and for anything shaped like a Vault token. A secret one test met is so
// also looked for in every other test's output, and a token no test knows
// (hostd's own, from its AppRole login) is still caught by its shape.

// vaultTokenShape matches Vault service and batch tokens (hvs., hvb.).
var vaultTokenShape = regexp.MustCompile(`\bhv[sb]\.[A-Za-z0-9_-]{20,}`)

type keptOutput struct{ where, text string }

// sweep holds a package's kept outputs and secrets.
type sweep struct {
	mu      sync.Mutex
	secrets map[string]string // value → what it is
	outputs []keptOutput
}

var kept = &sweep{secrets: map[string]string{}}

// KeepSecret adds a secret the sweep must not find in any kept output. what
// describes it in a finding; the value is never printed.
func KeepSecret(t testing.TB, what, value string) {
	t.Helper()
	if len(value) < minSecretLen {
		t.Fatalf("keeping %s for the secrets sweep: the value is too short to check", what)
	}
	kept.mu.Lock()
	defer kept.mu.Unlock()
	kept.secrets[value] = what
}

// KeepOutput adds text, something the product showed, to the sweep. where
// names it in a finding.
func KeepOutput(where, text string) {
	kept.mu.Lock()
	defer kept.mu.Unlock()
	kept.outputs = append(kept.outputs, keptOutput{where: where, text: text})
}

// KeepFile adds a file's content as it is now (it may live in a temporary
// directory that goes away with the test).
func KeepFile(t testing.TB, where, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("keeping %s for the secrets sweep: %v", where, err)
		return
	}
	KeepOutput(where, string(data))
}

// report searches every kept output, writes a summary and each finding to w
// and reports whether it found anything.
func (s *sweep) report(w io.Writer) (found bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	findings := s.findings()
	size := 0
	for _, o := range s.outputs {
		size += len(o.text)
	}
	if len(findings) == 0 {
		fmt.Fprintf(w, "secrets sweep: %d outputs (%d bytes) hold none of %d secrets and no Vault token\n",
			len(s.outputs), size, len(s.secrets))
		return false
	}
	fmt.Fprintf(w, "--- FAIL: secrets sweep: %d outputs (%d bytes), %d secrets:\n    %s\n",
		len(s.outputs), size, len(s.secrets), strings.Join(findings, "\n    "))
	return true
}

func (s *sweep) findings() []string {
	var out []string
	for _, o := range s.outputs {
		for value, what := range s.secrets {
			if strings.Contains(o.text, value) {
				out = append(out, fmt.Sprintf("%s contains %s", o.where, what))
			}
		}
		if n := len(vaultTokenShape.FindAllString(o.text, -1)); n > 0 {
			out = append(out, fmt.Sprintf("%s contains %d Vault token(s) (hvs./hvb.)", o.where, n))
		}
	}
	sort.Strings(out)
	return out
}
