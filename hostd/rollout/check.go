package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Check is the operator's command run after a restart, once the unit has
// stayed up for StableFor: a probe of the agent on its new content (does it
// answer, did it authenticate with the new key). It runs without a shell, as
// hostd's user, with HOSTD_UNIT set to the unit's name; its stdout is
// discarded. A non-zero exit or a timeout is a failure of the new content.
type Check struct {
	Command []string      // argv; Command[0] is an absolute path
	Timeout time.Duration // zero: DefaultCheckTimeout
}

// Limits on what of the check's stderr reaches an error text: the last line
// of the last stderrKept bytes, cut to stderrShown bytes.
const (
	stderrKept  = 4096
	stderrShown = 200
	// checkWaitDelay bounds the wait for the check's output once it has
	// exited or been killed (a child it left behind may hold stderr open).
	checkWaitDelay = time.Second
)

// runCheck runs the check for unit. The error names the program (never its
// arguments, which may carry anything), its exit status or the timeout, and
// a scrubbed tail of its stderr.
func (r *Rollout) runCheck(ctx context.Context, unit string) error {
	c := r.opts.Check
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
	cmd.Env = append(os.Environ(), "HOSTD_UNIT="+unit)
	stderr := &tailBuffer{}
	cmd.Stderr = stderr
	// Its own process group, so a timeout kills whatever it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = checkWaitDelay

	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("check %s did not finish within %s%s", c.Command[0], c.Timeout, stderr.summary())
	case errors.As(err, &exit):
		return fmt.Errorf("check %s failed (%s)%s", c.Command[0], exit.ProcessState, stderr.summary())
	default:
		return fmt.Errorf("check %s could not run: %w", c.Command[0], err)
	}
}

// tailBuffer keeps the last stderrKept bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - stderrKept; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

// keyLike matches long runs of key or token characters with a letter and a
// digit: what a key, a secret or a token printed by mistake looks like.
var keyLike = regexp.MustCompile(`[A-Za-z0-9+/=_-]{20,}`)

// summary is the last non-empty stderr line, printable, scrubbed of
// key-like words and cut short; empty when there is none.
func (t *tailBuffer) summary() string {
	lines := strings.Split(strings.TrimSpace(string(t.b)), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	line = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			return ' '
		}
		return r
	}, line)
	line = keyLike.ReplaceAllStringFunc(line, func(w string) string {
		if strings.ContainsAny(w, "0123456789") && strings.IndexFunc(w, isLetter) >= 0 {
			return "[redacted]"
		}
		return w
	})
	if len(line) > stderrShown {
		line = strings.ToValidUTF8(line[:stderrShown], "") + "..."
	}
	if line == "" {
		return ""
	}
	return fmt.Sprintf("; stderr: %q", line)
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
