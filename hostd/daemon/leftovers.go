package daemon

import (
	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// removeLeftovers deletes the temporary files a killed write left beside
// each destination (see write.RemoveLeftovers) before anything renders.
// Only paths are logged: a leftover may hold a secret.
func (d *daemon) removeLeftovers(cfg *config.Config) {
	for _, t := range cfg.Templates {
		removed, err := write.RemoveLeftovers(t.Destination)
		for _, path := range removed {
			d.logger.Info("removed a temporary file left by an interrupted write", "path", path, "destination", t.Destination)
		}
		if err != nil {
			d.logger.Warn("could not remove what an interrupted write left", "destination", t.Destination, "err", err)
		}
	}
}
