package daemon

import (
	"sync"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// firstRender watches render events and closes C once every configured
// template has been rendered without error at least once: then the files
// the agent needs are in place, and hostd says so in its log and its
// STATUS= line. It is a health fact, not readiness: hostd tells systemd
// READY=1 as soon as it runs, whether or not Vault answers.
type firstRender struct {
	C chan struct{}

	mu       sync.Mutex
	waiting  map[string]bool // destinations not rendered yet
	rendered map[string]bool // destinations rendered at least once
	done     bool
}

var _ event.Sink = (*firstRender)(nil)

func newFirstRender(destinations []string) *firstRender {
	r := &firstRender{C: make(chan struct{}), rendered: map[string]bool{}}
	r.expect(destinations)
	return r
}

// expect sets the templates to wait for (after a reload). Once closed, C
// stays closed.
func (r *firstRender) expect(destinations []string) {
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
func (r *firstRender) Publish(e event.Event) {
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
func (r *firstRender) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiting)
}

func (r *firstRender) check() {
	if !r.done && len(r.waiting) == 0 {
		r.done = true
		close(r.C)
	}
}
