package report

import (
	"slices"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

const (
	agentUnit = "sigsci-agent.service"
	agentConf = "/etc/sigsci/agent.conf"
)

var (
	www     = Site{Mount: "sigsci", Role: "vault-user", Site: "www"}
	apiSite = Site{Mount: "sigsci", Role: "vault-user", Site: "api"}
	t0      = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
)

func creds(s Site, key string) event.Creds {
	return event.Creds{Mount: s.Mount, Role: s.Role, Site: s.Site, AccessKey: key}
}

func rendered(dest, unit, digest string, cs ...event.Creds) event.Content {
	return event.Content{Time: t0, Template: dest, Unit: unit, Digest: digest, Creds: cs}
}

func runs(unit string, files ...event.RunningFile) event.Running {
	return event.Running{Time: t0, Unit: unit, Files: files}
}

func on(dest, digest string, since time.Time) event.RunningFile {
	return event.RunningFile{Destination: dest, Digest: digest, Since: since}
}

func wantsOf(t *table) []Want {
	_, wants, _ := t.resolve()
	return wants
}

func checkWants(t *testing.T, tb *table, want ...Want) {
	t.Helper()
	got := wantsOf(tb)
	if !slices.EqualFunc(got, want, Want.same) {
		t.Fatalf("reports = %+v\nwant      %+v", got, want)
	}
}

// agentRunsD1 is a table in which the agent runs agent.conf's content d1,
// rendered with www's key ak-1, since t0.
func agentRunsD1() *table {
	tb := newTable()
	tb.addContent(rendered(agentConf, agentUnit, "d1", creds(www, "ak-1")))
	tb.addRunning(runs(agentUnit, on(agentConf, "d1", t0)))
	return tb
}

func TestTheReportFollowsTheContentTheProcessRuns(t *testing.T) {
	tb := newTable()
	tb.addContent(rendered(agentConf, agentUnit, "d1", creds(www, "ak-1")))
	checkWants(t, tb) // what the unit runs is not known yet
	started := t0.Add(time.Minute)
	tb.addRunning(runs(agentUnit, on(agentConf, "d1", started)))
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-1", Unit: agentUnit, AgentStarted: started})

	// A rotation is rendered; the restart is owed (debounce, splay, a
	// window): the process still runs d1.
	tb.addContent(rendered(agentConf, agentUnit, "d2", creds(www, "ak-2")))
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-1", Unit: agentUnit, AgentStarted: started})

	// The restart passed its health check.
	restarted := t0.Add(time.Hour)
	tb.addRunning(runs(agentUnit, on(agentConf, "d2", restarted)))
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-2", Unit: agentUnit, AgentStarted: restarted})

	// A rollback puts d1 back: the report says so.
	tb.addRunning(runs(agentUnit, on(agentConf, "d1", restarted.Add(time.Minute))))
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-1", Unit: agentUnit, AgentStarted: restarted.Add(time.Minute)})
}

func TestAProcessOnContentHostdDidNotRenderIsNotReported(t *testing.T) {
	tb := newTable()
	// hostd starts: the process started before the file's current content
	// and hostd has no record of what it runs: a restart is owed.
	tb.addRunning(runs(agentUnit, on(agentConf, "", t0)))
	tb.addContent(rendered(agentConf, agentUnit, "d2", creds(www, "ak-2")))
	if _, wants, waiting := tb.resolve(); len(wants) != 0 || !waiting[www] {
		t.Fatalf("reports %+v, waiting %v: the report must wait for the restart", wants, waiting)
	}
	// Nor a process on content of an earlier hostd that this one never saw.
	tb.addRunning(runs(agentUnit, on(agentConf, "d0", t0)))
	checkWants(t, tb)
	tb.addRunning(runs(agentUnit, on(agentConf, "d2", t0.Add(time.Hour))))
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-2", Unit: agentUnit, AgentStarted: t0.Add(time.Hour)})
}

func TestAContentWhoseKeyIsUnknownWaits(t *testing.T) {
	tb := agentRunsD1()
	tb.addContent(rendered(agentConf, agentUnit, "d2", creds(www, "")))
	tb.addRunning(runs(agentUnit, on(agentConf, "d2", t0.Add(time.Hour))))
	if _, wants, waiting := tb.resolve(); len(wants) != 0 || !waiting[www] {
		t.Fatalf("reports %+v, waiting %v: an unknown key must not be reported", wants, waiting)
	}
	// The renderer reads again and tells the key of d2.
	tb.addContent(rendered(agentConf, agentUnit, "d2", creds(www, "ak-2")))
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-2", Unit: agentUnit, AgentStarted: t0.Add(time.Hour)})
}

func TestAStoppedUnitKeepsTheKeyItRan(t *testing.T) {
	tb := agentRunsD1()
	tb.addContent(rendered(agentConf, agentUnit, "d2", creds(www, "ak-2")))
	tb.addRunning(runs(agentUnit)) // stopped by an operator: not restarted
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-1", Unit: agentUnit, AgentStarted: t0})
}

func TestAFileWithoutAUnitIsReportedOnceWritten(t *testing.T) {
	tb := newTable()
	tb.addContent(event.Content{Time: t0, Template: "/etc/keys.env", Digest: "d1", Creds: []event.Creds{creds(www, "ak-1"), creds(apiSite, "ak-api")}})
	checkWants(t, tb, Want{Site: apiSite, AccessKey: "ak-api"}, Want{Site: www, AccessKey: "ak-1"})
}

func TestASiteWaitsForEveryUnitThatReadsIt(t *testing.T) {
	tb := newTable()
	tb.addContent(event.Content{Time: t0, Template: "/etc/keys.env", Digest: "f1", Creds: []event.Creds{creds(www, "ak-2")}})
	tb.addContent(rendered(agentConf, agentUnit, "d2", creds(www, "ak-2")))
	if _, wants, _ := tb.resolve(); len(wants) != 0 {
		t.Fatalf("reports %+v before hostd knows what %s runs", wants, agentUnit)
	}
	// The unit has a second file, not rendered yet: its sites are unknown.
	tb.addRunning(runs(agentUnit, on(agentConf, "d2", t0), on("/etc/sigsci/agent.toml", "t1", t0)))
	checkWants(t, tb)
}

func TestUnitsOnDifferentKeysReportTheOneNotOnTheNewest(t *testing.T) {
	tb := newTable()
	other := "other-agent.service"
	tb.addContent(rendered("/etc/a.conf", agentUnit, "a1", creds(www, "ak-1")))
	tb.addContent(rendered("/etc/b.conf", other, "b1", creds(www, "ak-1")))
	tb.addRunning(runs(agentUnit, on("/etc/a.conf", "a1", t0)))
	tb.addRunning(runs(other, on("/etc/b.conf", "b1", t0.Add(time.Minute))))
	tb.addContent(rendered("/etc/a.conf", agentUnit, "a2", creds(www, "ak-2")))
	tb.addContent(rendered("/etc/b.conf", other, "b2", creds(www, "ak-2")))
	tb.addRunning(runs(agentUnit, on("/etc/a.conf", "a2", t0.Add(time.Hour))))
	// other still runs ak-1: the host is not done.
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-1", Unit: other, AgentStarted: t0.Add(time.Minute)})
	keys, _, _ := tb.resolve()
	want := []event.AgentKey{
		{Unit: other, Mount: "sigsci", Role: "vault-user", Site: "www", AccessKey: "ak-1"},
		{Unit: agentUnit, Mount: "sigsci", Role: "vault-user", Site: "www", AccessKey: "ak-2"},
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("agent keys = %+v, want %+v", keys, want)
	}
	tb.addRunning(runs(other, on("/etc/b.conf", "b2", t0.Add(2*time.Hour))))
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-2", Unit: agentUnit, AgentStarted: t0.Add(time.Hour)})
}

func TestTheTableForgetsWhatIsNoLongerConfigured(t *testing.T) {
	tb := agentRunsD1()
	tb.keep(nil, nil)
	checkWants(t, tb)
	if len(tb.contents)+len(tb.running)+len(tb.lastKnown) != 0 {
		t.Fatalf("table keeps %+v", tb)
	}
}

func TestTheTableKeepsWhatAUnitRunsOnAndTheNewestContents(t *testing.T) {
	tb := newTable()
	tb.addContent(rendered(agentConf, agentUnit, "d0", creds(www, "ak-0")))
	tb.addRunning(runs(agentUnit, on(agentConf, "d0", t0)))
	for _, d := range []string{"d1", "d2", "d3", "d4", "d5", "d6"} {
		tb.addContent(rendered(agentConf, agentUnit, d, creds(www, "ak-"+d)))
	}
	c := tb.contents[agentConf]
	if _, ok := c.Creds["d0"]; !ok || len(c.Creds) > keptDigests+1 || c.Latest != "d6" {
		t.Fatalf("kept %v (latest %s): want d0, which the unit runs, and the newest", c.Order, c.Latest)
	}
	checkWants(t, tb, Want{Site: www, AccessKey: "ak-0", Unit: agentUnit, AgentStarted: t0})
}
