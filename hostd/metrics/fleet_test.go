package metrics

import (
	"testing"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

func TestFleetReportsAreCountedByResult(t *testing.T) {
	m, _ := newTestMetrics()
	const help = `
# HELP hostd_fleet_reports_total Reports to Vault of the access key this host's agents run (fleet/<role>/sites/<site>/hosts/<host>), by result: success or error.
# TYPE hostd_fleet_reports_total counter
`
	expect(t, m, help+`hostd_fleet_reports_total{result="error"} 0
hostd_fleet_reports_total{result="success"} 0
`, "hostd_fleet_reports_total")
	m.Publish(event.Report{Time: t0, Site: "www", AccessKey: "ak-1", OK: false, Err: "vault answered 403: permission denied"})
	m.Publish(event.Report{Time: t0, Site: "www", AccessKey: "ak-1", OK: true})
	m.Publish(event.Report{Time: t0, Site: "www", AccessKey: "ak-1", OK: true, Heartbeat: true})
	expect(t, m, help+`hostd_fleet_reports_total{result="error"} 1
hostd_fleet_reports_total{result="success"} 2
`, "hostd_fleet_reports_total")
}

func TestAgentKeyInfoFollowsTheKeyTheUnitRuns(t *testing.T) {
	m, _ := newTestMetrics()
	const help = `
# HELP hostd_agent_key_info 1 for the access key id each unit's running process started on, per site (unit is empty for a file without a unit).
# TYPE hostd_agent_key_info gauge
`
	m.Publish(event.AgentKeys{Time: t0, Keys: []event.AgentKey{
		{Unit: "sigsci-agent.service", Mount: "sigsci", Role: "vault-user", Site: "www", AccessKey: "ak-1"},
		{Mount: "sigsci", Role: "vault-user", Site: "api", AccessKey: "ak-api"},
	}})
	expect(t, m, help+`hostd_agent_key_info{access_key="ak-1",site="www",unit="sigsci-agent.service"} 1
hostd_agent_key_info{access_key="ak-api",site="api",unit=""} 1
`, "hostd_agent_key_info")

	// The unit moved to the new key; the file without a unit is gone.
	m.Publish(event.AgentKeys{Time: t0, Keys: []event.AgentKey{
		{Unit: "sigsci-agent.service", Mount: "sigsci", Role: "vault-user", Site: "www", AccessKey: "ak-2"},
	}})
	expect(t, m, help+`hostd_agent_key_info{access_key="ak-2",site="www",unit="sigsci-agent.service"} 1
`, "hostd_agent_key_info")
}
