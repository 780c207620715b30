package harness

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Process is a program a test runs beside it (a Vault server, hostd, Vault
// Agent, Prometheus), in a process group of its own, so that a signal
// reaches whatever the program started too (Vault's plugins).
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // how the program exited; set before exited is closed
}

// StartProcess starts cmd, set up by the caller (arguments, environment,
// output), in a process group of its own.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the program's process id, which is also its process group's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the program has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the program exited (nil for status 0); read it once Exited is
// closed.
func (p *Process) Err() error { return p.err }

// WaitError is what went wrong waiting for the program other than its exit
// status (an *exec.ExitError, which a stopped program has), or nil. Read it
// once Exited is closed.
func (p *Process) WaitError() error {
	var exitErr *exec.ExitError
	if p.err != nil && !errors.As(p.err, &exitErr) {
		return p.err
	}
	return nil
}

// Signal sends sig to the program's process group.
func (p *Process) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.Pid(), sig)
}

// Stop ends the process group as systemd stops a service: SIGTERM, then
// SIGKILL once within has passed. It reports whether the program exited
// before the SIGKILL, and returns once it has exited. SIGCONT follows the
// SIGTERM, because a paused program handles it only once it runs. Like
// Kill, it signals the group even when the program has exited, for what it
// started may still run; it then returns true at once.
func (p *Process) Stop(within time.Duration) bool {
	_ = p.Signal(syscall.SIGTERM)
	_ = p.Signal(syscall.SIGCONT)
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-p.exited:
		return true
	case <-timer.C:
		p.Kill()
		return false
	}
}

// Kill ends the process group at once (SIGKILL), as a crash of the machine
// would, and returns once the program has exited. It signals the group even
// when the program has exited, for what it started may still run (Vault's
// plugins); the group's id stays taken while any of them does.
func (p *Process) Kill() {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		_ = p.cmd.Process.Kill() // no group to signal: at least the program itself
	}
	<-p.exited
}
