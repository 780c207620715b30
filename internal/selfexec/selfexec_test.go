package selfexec_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/selfexec"
)

// fakeMain stands in for a command's main: it prints its arguments and a
// variable of its environment, then waits for SIGTERM and exits 3.
func fakeMain() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("args:", strings.Join(os.Args[1:], " "))
	fmt.Fprintln(os.Stderr, "env:", os.Getenv("SELFEXEC_TEST_VALUE"))
	<-term
	fmt.Fprintln(os.Stderr, "stopping")
	os.Exit(3)
}

func TestMain(m *testing.M) { selfexec.Main(m, fakeMain) }

func TestTheTestBinaryRunsAsTheCommandUntilItIsSignalled(t *testing.T) {
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	p := selfexec.Start(t, selfexec.Options{Env: []string{"SELFEXEC_TEST_VALUE=seen"}, Stdout: w}, "-a", "b")
	w.Close()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "args: -a b\n" {
		t.Fatalf("first line on stdout = %q, %v; want the arguments (the command's main ran, not the tests)", line, err)
	}
	p.Signal(t, syscall.SIGTERM)
	err = p.Wait(t, "SIGTERM", time.Minute)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Wait = %v, want exit status 3 from the command's main", err)
	}
	if got := p.Stderr.String(); got != "env: seen\nstopping\n" {
		t.Errorf("stderr = %q, want the added variable and the stop", got)
	}
}

func TestAProcessStillRunningIsKilledWhenItsTestEnds(t *testing.T) {
	var p *selfexec.Process
	t.Run("starts it", func(t *testing.T) {
		p = selfexec.Start(t, selfexec.Options{}, "idle")
	})
	// The subtest's cleanup killed it and waited for it.
	if p.Cmd.ProcessState == nil {
		t.Fatal("the process was not waited for when its test ended")
	}
	if ws, ok := p.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the process ended with %v, want killed by SIGKILL", p.Cmd.ProcessState)
	}
}
