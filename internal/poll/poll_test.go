package poll

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWithinReturnsOnceTheStateHolds(t *testing.T) {
	var asked atomic.Int32
	took := Within(t, 5*time.Second, time.Millisecond, "the third ask", func() (bool, string) {
		n := asked.Add(1)
		return n >= 3, fmt.Sprintf("asked %d times", n)
	})
	if asked.Load() != 3 || took >= 5*time.Second {
		t.Fatalf("asked %d times in %s, want 3 well within the timeout", asked.Load(), took)
	}
}

// fatalTB records Fatalf and stops the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestWithinFailsWithWhatItWaitedForAndTheLastState(t *testing.T) {
	tb := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != tb {
				panic(r)
			}
		}()
		Within(tb, 30*time.Millisecond, time.Millisecond, "a file", func() (bool, string) { return false, "still empty" })
		t.Fatal("Within returned although the state never held")
	}()
	for _, want := range []string{"waiting 30ms for a file", "still empty"} {
		if !strings.Contains(tb.msg, want) {
			t.Errorf("failure %q lacks %q", tb.msg, want)
		}
	}
}
