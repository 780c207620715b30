package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

const (
	testDeadline = 60 * time.Second
	watch        = 100 * time.Millisecond
)

// host is a WAF host in miniature: a real systemd user manager running a
// fake agent that reads its config files, and the files themselves.
type host struct {
	t       *testing.T
	ctx     context.Context
	m       *systemdtest.Manager
	conn    *restart.Conn
	dir     string
	unit    string
	events  *eventtest.Recorder[event.Event]
	rollout *rollout.Rollout
}

// agentUnit is a fake WAF agent: it records each start, refuses config
// containing "bad" (the way given by refuse) and otherwise keeps running.
//
// It loads its config while it starts: an ExecStartPre records the start
// and copies the *.conf files to "loaded", and the main process judges what
// was loaded. Both are done by the time systemd reports the start, so a
// restart right after it (a test's first change, moments after newHost)
// cannot stop the agent before it has recorded its start, and a file the
// test writes once the start is done is not what the agent runs on.
func agentUnit(dir, refuse string) string {
	load := "ExecStartPre=/bin/sh -c 'echo start >> \"$$CONF_DIR/starts\"; cat \"$$CONF_DIR\"/*.conf > \"$$CONF_DIR/loaded\"'\n"
	refuseLoaded := `if grep -q bad "$$CONF_DIR/loaded"; then echo "bad config" >&2; exit 1; fi`
	var svc string
	switch refuse {
	case "exit": // starts, reads its config, exits: the job result is still "done"
		svc = load + "ExecStart=/bin/sh -c '" + refuseLoaded + "; exec sleep infinity'\n"
	case "crashloop": // the same, but systemd restarts it forever
		svc = load + "ExecStart=/bin/sh -c '" + refuseLoaded + "; exec sleep infinity'\n" +
			"Restart=always\nRestartSec=30ms\n"
	case "refuse-start": // a config check before start: the job itself fails
		svc = "ExecStartPre=/bin/sh -c 'if cat \"$$CONF_DIR\"/*.conf | grep -q bad; then echo \"bad config\" >&2; exit 1; fi'\n" +
			load + "ExecStart=/bin/sleep infinity\n"
	case "die-later": // starts, runs a while on a config it cannot use, then exits
		svc = load + "ExecStart=/bin/sh -c 'if grep -q bad \"$$CONF_DIR/loaded\"; then sleep 2; echo \"bad config\" >&2; exit 1; fi; exec sleep infinity'\n"
	case "accept": // accepts any config
		svc = load + "ExecStart=/bin/sleep infinity\n"
	case "slow-stop": // accepts any config; a stop takes a second
		svc = load + "ExecStart=/bin/sleep infinity\nExecStop=/bin/sleep 1\n"
	case "slow-start": // accepts any config; a start takes 30 s while the file "slow" exists
		svc = "ExecStartPre=/bin/sh -c 'if [ -e \"$$CONF_DIR/slow\" ]; then sleep 30; fi'\n" +
			load + "ExecStart=/bin/sleep infinity\n"
	default:
		panic(refuse)
	}
	return "[Unit]\nDescription=fake WAF agent\nStartLimitIntervalSec=0\n[Service]\nEnvironment=CONF_DIR=" + dir + "\n" + svc
}

func newHost(t *testing.T, refuse string, opts rollout.Options) *host {
	t.Helper()
	return newHostWith(t, refuse, 10*time.Second, func(string) rollout.Options { return opts })
}

// newHostWithJobTimeout is newHost with hostd's wait for a restart job.
func newHostWithJobTimeout(t *testing.T, refuse string, jobTimeout time.Duration, opts rollout.Options) *host {
	t.Helper()
	return newHostWith(t, refuse, jobTimeout, func(string) rollout.Options { return opts })
}

// newHostWith is newHost with hostd's wait for a restart job, and options
// made once the agent's config directory is known.
func newHostWith(t *testing.T, refuse string, jobTimeout time.Duration, optsFor func(dir string) rollout.Options) *host {
	t.Helper()
	m := systemdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	h := &host{t: t, ctx: ctx, m: m, dir: filepath.Join(m.Dir(), "agent"), unit: "fakeagent.service", events: eventtest.New[event.Event]()}
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.writeConf("agent.conf", "good 1")
	if err := m.InstallUnit(ctx, h.unit, agentUnit(h.dir, refuse)); err != nil {
		t.Fatal(err)
	}
	if err := m.StartUnit(ctx, h.unit); err != nil {
		t.Fatal(err)
	}
	conn, err := restart.Dial(ctx, restart.Options{Bus: restart.UserBus, Address: m.BusAddress(), JobTimeout: jobTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	h.conn = conn

	opts := optsFor(h.dir)
	if opts.WatchInterval == 0 {
		opts.WatchInterval = watch
	}
	if opts.StableFor == 0 {
		opts.StableFor = opts.WatchInterval
	}
	if opts.ActiveTimeout == 0 {
		opts.ActiveTimeout = 5 * time.Second
	}
	opts.Restarter, opts.Restore, opts.Sink = conn, write.Put, h.events
	h.rollout = rollout.New(opts)
	runtest.UntilEnd(t, time.Minute, nil, h.rollout.Run)
	return h
}

// writeConf writes one config file the way hostd/write does for a template,
// and returns the change to submit.
func (h *host) writeConf(name, content string) rollout.Change {
	h.t.Helper()
	dest := filepath.Join(h.dir, name)
	res, err := write.Write(dest, []byte(content+"\n"), write.Options{Perms: 0o644, Backup: true})
	if err != nil {
		h.t.Fatal(err)
	}
	if !res.Changed {
		h.t.Fatalf("%s did not change", dest)
	}
	return rollout.Change{Unit: h.unit, Destination: dest, Previous: res.Previous}
}

func (h *host) readConf(name string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// starts is how many times the agent process started.
func (h *host) starts() int {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, "starts"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0 // no start recorded yet
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Count(string(b), "start\n")
}

// waitStarts waits until the agent has recorded n starts and fails if it
// recorded more. A start is on disk before systemd calls the unit up, but
// a restart may still be under way, so the count is polled (with the test's
// deadline).
func (h *host) waitStarts(n int) {
	h.t.Helper()
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		got := h.starts()
		if got > n {
			h.t.Fatalf("agent started %d times, want %d", got, n)
		}
		if got == n {
			return
		}
		select {
		case <-ticker.C:
		case <-h.ctx.Done():
			h.t.Fatalf("agent started %d times, want %d", got, n)
		}
	}
}

func (h *host) state() restart.State {
	h.t.Helper()
	st, err := h.conn.UnitState(h.ctx, h.unit)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func TestChangedConfigRestartsTheAgent(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{Debounce: 50 * time.Millisecond})
	before := h.state()

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))

	p := eventtest.Take[event.Pending](t, h.ctx, h.events)
	if p.Unit != h.unit || !strings.HasSuffix(p.Cause, "agent.conf") || p.Due.Before(p.Time) {
		t.Fatalf("pending event: %+v", p)
	}
	r := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if r.Result != event.ResultDone || r.RolledBack || r.Err != "" || r.ActiveState != "active" || r.SubState != "running" {
		t.Fatalf("restart event: %+v", r)
	}
	t.Logf("restart + health check (watch interval %s) took %s", watch, r.Duration)
	after := h.state()
	if after.InvocationID == before.InvocationID {
		t.Fatalf("agent was not restarted: invocation %s → %s", before.InvocationID, after.InvocationID)
	}
	h.waitStarts(2)
}

func TestManyChangesToSeveralFilesMakeOneRestart(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{Debounce: 300 * time.Millisecond})

	var dues []time.Time
	for i := 0; i < 5; i++ {
		h.rollout.Submit(h.writeConf("agent.conf", fmt.Sprintf("good %d", i+2)))
		h.rollout.Submit(h.writeConf("extra.conf", fmt.Sprintf("good extra %d", i)))
		dues = append(dues, eventtest.Take[event.Pending](t, h.ctx, h.events).Due, eventtest.Take[event.Pending](t, h.ctx, h.events).Due)
	}
	for i := 1; i < len(dues); i++ {
		if dues[i].Before(dues[i-1]) {
			t.Fatalf("a later change moved the restart earlier: %v", dues)
		}
	}

	r := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if r.Result != event.ResultDone {
		t.Fatalf("restart event: %+v", r)
	}
	if n := h.rollout.BatchesStarted(); n != 1 {
		t.Fatalf("%d restarts for one burst of changes, want 1", n)
	}
	h.waitStarts(2) // the initial start and one restart
}

func TestAgentThatRejectsTheChangeIsRolledBack(t *testing.T) {
	for _, refuse := range []string{"exit", "refuse-start", "crashloop"} {
		t.Run(refuse, func(t *testing.T) {
			// A longer watch interval than elsewhere: it must exceed the
			// fake agent's time to read its config and exit, also on a
			// loaded machine.
			h := newHost(t, refuse, rollout.Options{Debounce: 50 * time.Millisecond, WatchInterval: 500 * time.Millisecond, ActiveTimeout: 4 * time.Second})

			h.rollout.Submit(h.writeConf("agent.conf", "bad key"))

			first := eventtest.Take[event.Restart](t, h.ctx, h.events)
			if first.RolledBack || first.Result == event.ResultDone || first.Err == "" {
				t.Fatalf("first restart event: %+v", first)
			}
			t.Logf("first attempt: result %s after %s: %s", first.Result, first.Duration, first.Err)
			second := eventtest.Take[event.Restart](t, h.ctx, h.events)
			if !second.RolledBack || second.Result != event.ResultRolledBack || !strings.Contains(second.Err, "agent.conf") {
				t.Fatalf("rollback event: %+v", second)
			}
			t.Logf("rollback restart took %s", second.Duration)
			if got := h.readConf("agent.conf"); got != "good 1" {
				t.Fatalf("agent.conf after rollback = %q, want the previous content", got)
			}
			if st := h.state(); !st.Active() || st.SubState != "running" {
				t.Fatalf("agent after rollback: %+v", st)
			}
			dest := filepath.Join(h.dir, "agent.conf")
			if err := h.rollout.Refuse(dest, []byte("bad key\n")); err == nil || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("Refuse of the content the agent did not survive = %v, want an error", err)
			}
			if err := h.rollout.Refuse(dest, []byte("good 2\n")); err != nil {
				t.Fatalf("Refuse of other content = %v, want nil", err)
			}

			// The next refresh renders the same bad content again: it is put
			// back without another restart (no restart loop)...
			inv := h.state().InvocationID
			h.rollout.Submit(h.writeConf("agent.conf", "bad key"))
			again := eventtest.Take[event.Restart](t, h.ctx, h.events)
			if again.Result != event.ResultRejected || !again.RolledBack || h.state().InvocationID != inv {
				t.Fatalf("same bad content again: %+v, invocation %s → %s", again, inv, h.state().InvocationID)
			}
			if got := h.readConf("agent.conf"); got != "good 1" {
				t.Fatalf("agent.conf after rejecting the same content = %q", got)
			}
			// ...while different content is tried normally.
			h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
			if r := eventtest.Take[event.Restart](t, h.ctx, h.events); r.Result != event.ResultDone || h.state().InvocationID == inv {
				t.Fatalf("new content after a rejection: %+v (invocation still %s)", r, inv)
			}
		})
	}
}

// Two writes of one file before its restart: the rollback puts back what the
// agent ran on before the batch, not the in-between content it never ran on.
func TestRollbackRestoresTheContentBeforeTheBatch(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{Debounce: 300 * time.Millisecond, WatchInterval: 500 * time.Millisecond, ActiveTimeout: 4 * time.Second})

	h.rollout.Submit(h.writeConf("agent.conf", "good 2, never run"))
	h.rollout.Submit(h.writeConf("agent.conf", "bad 3"))

	if first := eventtest.Take[event.Restart](t, h.ctx, h.events); first.RolledBack || first.Err == "" {
		t.Fatalf("first restart event: %+v", first)
	}
	if second := eventtest.Take[event.Restart](t, h.ctx, h.events); second.Result != event.ResultRolledBack {
		t.Fatalf("rollback event: %+v", second)
	}
	if got := h.readConf("agent.conf"); got != "good 1" {
		t.Fatalf("agent.conf after rollback = %q, want %q, the content before the batch", got, "good 1")
	}
	if n := h.rollout.BatchesStarted(); n != 1 {
		t.Fatalf("%d batches for two changes before the restart, want 1", n)
	}
}

func TestChangesDuringARestartMakeTheNextBatch(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{Debounce: 50 * time.Millisecond})

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	eventtest.Take[event.Pending](t, h.ctx, h.events)
	h.rollout.Submit(h.writeConf("agent.conf", "good 3"))
	eventtest.Take[event.Pending](t, h.ctx, h.events)
	if r := eventtest.Take[event.Restart](t, h.ctx, h.events); r.Result != event.ResultDone {
		t.Fatalf("restart: %+v", r)
	}
	h.rollout.Submit(h.writeConf("agent.conf", "good 4"))
	if r := eventtest.Take[event.Restart](t, h.ctx, h.events); r.Result != event.ResultDone {
		t.Fatalf("second restart: %+v", r)
	}
	h.waitStarts(3)
}
