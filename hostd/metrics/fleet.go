package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// fleetMetrics are the metrics of the fleet report (hostd/report): how its
// writes to Vault fare, and which access key each unit runs, so Prometheus
// has the same fleet view as Vault. Access key ids are identifiers, not
// secrets; a host has one or two per site at a time.
type fleetMetrics struct {
	reports *prometheus.CounterVec
	keyInfo *prometheus.GaugeVec

	mu   sync.Mutex
	keys map[[3]string]bool // the keyInfo series set now: unit, site, access_key
}

func newFleetMetrics() *fleetMetrics {
	f := &fleetMetrics{
		reports: newCounterVec("fleet_reports_total",
			"Reports to Vault of the access key this host's agents run (fleet/<role>/sites/<site>/hosts/<host>), by result: success or error.",
			"result"),
		keyInfo: newGaugeVec("agent_key_info",
			"1 for the access key id each unit's running process started on, per site (unit is empty for a file without a unit).",
			"unit", "site", "access_key"),
		keys: map[[3]string]bool{},
	}
	// Both results exist from the start, so increase() sees the first error.
	f.reports.WithLabelValues(resultSuccess)
	f.reports.WithLabelValues(resultError)
	return f
}

const (
	resultSuccess = "success"
	resultError   = "error"
)

func (f *fleetMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{f.reports, f.keyInfo}
}

func (f *fleetMetrics) report(e event.Report) {
	if e.OK {
		f.reports.WithLabelValues(resultSuccess).Inc()
	} else {
		f.reports.WithLabelValues(resultError).Inc()
	}
}

// agentKeys makes the key series those of e: a unit that moved to a new key
// loses the series of the old one.
func (f *fleetMetrics) agentKeys(e event.AgentKeys) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := map[[3]string]bool{}
	for _, k := range e.Keys {
		labels := [3]string{k.Unit, k.Site, k.AccessKey}
		now[labels] = true
		f.keyInfo.WithLabelValues(labels[:]...).Set(1)
	}
	for labels := range f.keys {
		if !now[labels] {
			f.keyInfo.DeleteLabelValues(labels[:]...)
		}
	}
	f.keys = now
}
