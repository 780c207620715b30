package render

import (
	"fmt"

	"github.com/hashicorp/consul-template/manager"
)

// startRunner runs runner.Start in a goroutine; finished closes when it
// returns. A panic inside consul-template must not take the daemon (and the
// WAF agent's config updates) down: it arrives on panicked as an error.
func startRunner(runner *manager.Runner) (finished <-chan struct{}, panicked <-chan error) {
	done := make(chan struct{})
	panics := make(chan error, 1)
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				panics <- fmt.Errorf("consul-template runner panicked: %v", p)
			}
		}()
		runner.Start()
	}()
	return done, panics
}

// stopRunner stops runner and waits for its Start to return, reading ErrCh
// meanwhile: Start may be blocked sending an error nobody else will read.
func stopRunner(runner *manager.Runner, finished <-chan struct{}) {
	runner.Stop()
	for {
		select {
		case <-runner.ErrCh:
		case <-finished:
			return
		}
	}
}
