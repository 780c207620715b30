package harness

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
)

func TestProgramFatalEndsTheBodyAndRunsCleanupsLastFirst(t *testing.T) {
	var out logbuf.Buffer
	var order []string
	var dir string
	code := runProgram("prog", &out, func(p testing.TB) {
		dir = p.TempDir()
		p.Cleanup(func() { order = append(order, "first") })
		p.Cleanup(func() { order = append(order, "second") })
		p.Fatalf("cannot go on: %d", 42)
		order = append(order, "after Fatalf")
	})
	if code != 1 {
		t.Errorf("exit code %d after Fatalf, want 1", code)
	}
	if want := []string{"second", "first"}; !slices.Equal(order, want) {
		t.Errorf("ran %v, want %v", order, want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s still there: %v", dir, err)
	}
	if !strings.Contains(out.String(), "prog: cannot go on: 42\n") {
		t.Errorf("output lacks the failure:\n%s", out.String())
	}
}

func TestProgramThatSucceedsExitsZero(t *testing.T) {
	var out logbuf.Buffer
	if code := runProgram("prog", &out, func(p testing.TB) { p.Logf("fine") }); code != 0 {
		t.Fatalf("exit code %d, want 0; output:\n%s", code, out.String())
	}
}

func TestProgramSkipIsAFailure(t *testing.T) {
	var out logbuf.Buffer
	if code := runProgram("prog", &out, func(p testing.TB) { p.Skipf("no Vault here") }); code != 1 {
		t.Fatalf("exit code %d after Skipf, want 1", code)
	}
}

func TestProgramPanicIsAFailureAndStillCleansUp(t *testing.T) {
	var out logbuf.Buffer
	cleaned := false
	code := runProgram("prog", &out, func(p testing.TB) {
		p.Cleanup(func() { cleaned = true })
		panic("boom")
	})
	if code != 1 || !cleaned {
		t.Fatalf("exit code %d, cleaned up %v; want 1 and true", code, cleaned)
	}
}

func TestStepCleansUpBeforeTheNextStep(t *testing.T) {
	var out logbuf.Buffer
	var events []string
	code := runProgram("prog", &out, func(p testing.TB) {
		for _, name := range []string{"a", "b"} {
			Step(p, name, func(s testing.TB) {
				events = append(events, "run "+s.Name())
				s.Cleanup(func() { events = append(events, "clean "+s.Name()) })
			})
		}
		Step(p, "c", func(s testing.TB) { s.Fatalf("step fails") })
		events = append(events, "after the failed step")
	})
	want := []string{"run prog/a", "clean prog/a", "run prog/b", "clean prog/b"}
	if code != 1 || !slices.Equal(events, want) {
		t.Fatalf("exit code %d, events %v; want 1 and %v", code, events, want)
	}
}

func TestInterruptCancelsTheContextAndCleansUp(t *testing.T) {
	var out logbuf.Buffer
	cleaned := make(chan struct{})
	code := runProgram("prog", &out, func(p testing.TB) {
		Step(p, "server", func(s testing.TB) {
			s.Cleanup(func() { close(cleaned) })
			if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
				s.Fatalf("signalling: %v", err)
			}
			select {
			case <-s.Context().Done():
			case <-time.After(30 * time.Second):
				s.Fatalf("the context outlived the interrupt")
			}
		})
	})
	if code != 1 {
		t.Errorf("exit code %d after an interrupt, want 1", code)
	}
	select {
	case <-cleaned:
	default:
		t.Errorf("the step's cleanup did not run")
	}
	if !strings.Contains(out.String(), "interrupted") {
		t.Errorf("output does not say it was interrupted:\n%s", out.String())
	}
}
