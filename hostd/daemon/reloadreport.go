package daemon

import (
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// reportReload publishes the outcome of the start or of a reload with the
// templates and units that run now (metrics deletes the series of the
// others).
func (d *daemon) reportReload(ok bool) {
	e := event.Reload{Time: time.Now(), OK: ok}
	seen := map[string]bool{}
	for _, t := range d.cur.pipelineCfg.Templates {
		e.Templates = append(e.Templates, t.Destination)
		if t.Unit != "" && !seen[t.Unit] {
			seen[t.Unit] = true
			e.Units = append(e.Units, t.Unit)
		}
	}
	d.sink.Publish(e)
}

// runsWith reports whether every part runs with cfg: after apply, a part
// whose new settings failed keeps the old ones, and the reload counts as
// failed.
func (d *daemon) runsWith(cfg *config.Config) bool {
	return samePipeline(d.cur.pipelineCfg, cfg) &&
		d.cur.statusCfg == cfg.Status &&
		d.cur.telemetryAddr == cfg.Telemetry.ListenAddress &&
		d.cur.reportCfg == cfg.Report
}
