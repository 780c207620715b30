package harness

import "testing"

// StepT is Step for a story that runs only under go test, whose steps take
// the *testing.T that go test gives them.
func StepT(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	Step(t, name, func(tb testing.TB) { f(tb.(*testing.T)) })
}

// RandomHex is 16 random bytes in hex: a name or a secret no other run
// of a story uses.
func RandomHex(t testing.TB) string { return randomHex(t, 16) }
