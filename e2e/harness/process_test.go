package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// startShell runs script with sh for the test and kills it when the test
// ends.
func startShell(t *testing.T, script string) *Process {
	t.Helper()
	p, err := StartProcess(exec.Command("sh", "-c", script))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// gone reports whether pid has exited (and is no more than a zombie).
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// readPid waits for the pid a script wrote to path.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	poll.Within(t, 10*time.Second, 5*time.Millisecond, "the script to write its child's pid", func() (bool, string) {
		data, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(data), "\n") {
			return false, fmt.Sprint(err)
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil, fmt.Sprint(err)
	})
	return pid
}

// A program that ends on SIGTERM stops in time, and the signal reaches the
// processes it started (as Vault's plugins), which stop with it.
func TestStopEndsTheWholeProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	p := startShell(t, "sleep 600 & echo $! > "+pidFile+"; wait")
	child := readPid(t, pidFile)
	if !p.Stop(time.Minute) {
		t.Fatal("a program that ends on SIGTERM had to be killed")
	}
	if err := p.WaitError(); err != nil {
		t.Errorf("WaitError after a stop by signal = %v, want nil (an exit status is no wait error)", err)
	}
	if p.Err() == nil {
		t.Error("Err is nil for a program ended by SIGTERM")
	}
	poll.Within(t, 10*time.Second, 5*time.Millisecond, "the program's child to end", func() (bool, string) {
		return gone(child), "child still running"
	})
	if !p.Stop(time.Minute) {
		t.Error("stopping a program again reports it had to be killed")
	}
}

// A program that ignores SIGTERM is killed once within has passed.
func TestStopKillsAProgramThatIgnoresSIGTERM(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	p := startShell(t, "trap '' TERM; echo $$ > "+ready+"; while :; do sleep 1; done")
	readPid(t, ready)
	if p.Stop(100 * time.Millisecond) {
		t.Fatal("Stop reports a program that ignores SIGTERM as stopped in time")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the killed program exited")
	}
}

// A paused program (SIGSTOP, as Vault.Pause does) still stops on SIGTERM.
func TestStopEndsAPausedProgram(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	p := startShell(t, "echo $$ > "+ready+"; while :; do sleep 1; done")
	readPid(t, ready)
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if !p.Stop(time.Minute) {
		t.Fatal("a paused program had to be killed")
	}
}

// A shell command a test never waited for is killed with what it started:
// the test's end does not wait for a child that still holds its output.
func TestAnUnwaitedShellCommandEndsWithItsChildren(t *testing.T) {
	v := &Vault{programs: &Programs{Vault: "/bin/true"}, Home: t.TempDir()}
	pidFile := filepath.Join(t.TempDir(), "child")
	ended := make(chan struct{})
	var child int
	go func() {
		defer close(ended)
		t.Run("story", func(t *testing.T) {
			v.StartShell(t, t.TempDir(), "sleep 600 & echo $! > "+pidFile+"; wait")
			child = readPid(t, pidFile)
		})
	}()
	select {
	case <-ended:
	case <-time.After(time.Minute):
		t.Fatal("the story's end waits for the shell's child")
	}
	poll.Within(t, 10*time.Second, 5*time.Millisecond, "the shell's child to end with the story", func() (bool, string) {
		return child != 0 && gone(child), fmt.Sprintf("child %d still runs", child)
	})
}
