package eventtest

import (
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
