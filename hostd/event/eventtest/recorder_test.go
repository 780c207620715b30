package eventtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

func TestRecorderKeepsItsTypeAndWaitsFromAnIndex(t *testing.T) {
	r := New[event.Auth]()
	r.Publish(event.Render{Template: "/etc/agent.conf"}) // not an Auth: dropped
	r.Publish(event.Auth{Method: "approle", OK: false})
	go r.Publish(event.Auth{Method: "approle", OK: true})

	ok := func(e event.Auth) bool { return e.OK }
	e, next := r.WaitFor(t, 0, 10*time.Second, "a good login", ok)
	if !e.OK || next != 2 || r.Len() != 2 {
		t.Fatalf("WaitFor = %+v, %d (len %d); want the second Auth, index 2, 2 kept", e, next, r.Len())
	}
	if all := r.All(); len(all) != 2 || all[0].OK {
		t.Fatalf("All = %+v", all)
	}
}

func TestTakeReturnsEachEventOfItsTypeOnceAndInOrder(t *testing.T) {
	r := New[event.Event]()
	r.Publish(event.Pending{Unit: "a.service"})
	r.Publish(event.Restart{Unit: "a.service", Result: event.ResultDone})
	r.Publish(event.Pending{Unit: "b.service"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if p := Take[event.Pending](t, ctx, r); p.Unit != "a.service" {
		t.Fatalf("first Take = %+v, want a.service's Pending", p)
	}
	if p := Take[event.Pending](t, ctx, r); p.Unit != "b.service" {
		t.Fatalf("second Take = %+v, want b.service's Pending", p)
	}
	if u := r.Untaken(); len(u) != 1 || u[0] != (event.Restart{Unit: "a.service", Result: event.ResultDone}) {
		t.Fatalf("Untaken = %+v, want only the Restart", u)
	}
	go r.Publish(event.Pending{Unit: "c.service"})
	if p := Take[event.Pending](t, ctx, r); p.Unit != "c.service" {
		t.Fatalf("Take after a later Publish = %+v, want c.service's Pending", p)
	}
	if rs := Take[event.Restart](t, ctx, r); rs.Result != event.ResultDone {
		t.Fatalf("Take of the Restart = %+v", rs)
	}
	if u := r.Untaken(); len(u) != 0 {
		t.Fatalf("Untaken = %+v after every event was taken", u)
	}
	if r.Len() != 4 || len(r.All()) != 4 {
		t.Fatalf("Len %d, All %+v: taken events must stay kept", r.Len(), r.All())
	}
}

// fatalRecorder keeps the message of Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestTakeFailsWhenTheContextEnds(t *testing.T) {
	r := New[event.Event]()
	r.Publish(event.Pending{Unit: "a.service"})
	r.Publish(event.Restart{Unit: "a.service", Result: event.ResultFailed})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	f := &fatalRecorder{TB: t}
	if p := Take[event.Pending](f, ctx, r); p.Unit != "a.service" || f.msg != "" {
		t.Fatalf("Take = %+v (failure %q), want the kept Pending even after the context ended", p, f.msg)
	}
	if p := Take[event.Pending](f, ctx, r); p != (event.Pending{}) {
		t.Fatalf("Take = %+v with no Pending left, want the zero value", p)
	}
	if !strings.Contains(f.msg, "no event.Pending") || !strings.Contains(f.msg, "context canceled") ||
		!strings.Contains(f.msg, "event.Restart") || strings.Contains(f.msg, "event.Pending{") {
		t.Fatalf("failure %q: want it to name the missing type, why the wait ended and the events not taken (only the Restart)", f.msg)
	}
}
