package daemon

import (
	"sync"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// readiness watches render events and closes C once every configured
// template has been rendered without error at least once: then the files
// the agent needs are in place and hostd tells systemd READY=1.
type readiness struct {
	C chan struct{}

	mu       sync.Mutex
	waiting  map[string]bool // destinations not rendered yet
	rendered map[string]bool // destinations rendered at least once
	ready    bool
}

var _ event.Sink = (*readiness)(nil)

func newReadiness(destinations []string) *readiness {
	r := &readiness{C: make(chan struct{}), rendered: map[string]bool{}}
	r.expect(destinations)
	return r
}

// expect sets the templates to wait for (after a reload). Once ready, hostd
// stays ready.
func (r *readiness) expect(destinations []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting = map[string]bool{}
	for _, d := range destinations {
		if !r.rendered[d] {
			r.waiting[d] = true
		}
	}
	r.check()
}

// Publish implements event.Sink.
func (r *readiness) Publish(e event.Event) {
	render, ok := e.(event.Render)
	if !ok || render.Err != "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rendered[render.Template] = true
	delete(r.waiting, render.Template)
	r.check()
}

// pending returns how many templates are still waited for.
func (r *readiness) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiting)
}

func (r *readiness) check() {
	if !r.ready && len(r.waiting) == 0 {
		r.ready = true
		close(r.C)
	}
}
