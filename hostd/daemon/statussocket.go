package daemon

import (
	"context"
	"fmt"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
)

// startStatus serves the status socket (hostd status, hostd refresh) as its
// own part. The socket is created here, so a path in use is reported at
// once.
func (d *daemon) startStatus(ctx context.Context, cfg config.Status) (*part, error) {
	ln, err := status.Listen(ctx, cfg.SocketPath, cfg.SocketMode)
	if err != nil {
		return nil, err
	}
	h := status.NewHandler(d.state, func() error {
		err := d.views.refresh()
		if err == nil {
			d.logger.Info("refresh asked on the status socket: reading every secret again")
		}
		return err
	})
	d.logger.Info("status socket listening", "path", cfg.SocketPath, "mode", fmt.Sprintf("%#o", cfg.SocketMode))
	return launch(ctx, "status socket", d.failed, func(ctx context.Context) error {
		return status.Serve(ctx, ln, h)
	}), nil
}

// replaceStatus moves the status socket. A new path is opened before the
// old socket is closed; the same path (new mode) must be closed first.
func (d *daemon) replaceStatus(ctx context.Context, cfg config.Status) {
	if cfg.SocketPath == d.cur.statusCfg.SocketPath {
		d.cur.status.stop()
		start := func(c config.Status) (*part, error) { return d.startStatus(ctx, c) }
		d.cur.status, d.cur.statusCfg, _ = restartPart(d, "status socket", "status socket: new settings failed; keeping the old ones",
			start, cfg, d.cur.statusCfg)
		return
	}
	p, err := d.startStatus(ctx, cfg)
	if err != nil {
		d.logger.Error("status socket: new path failed; keeping the old one", "err", err, "path", cfg.SocketPath)
		return
	}
	d.cur.status.stop()
	d.cur.status, d.cur.statusCfg = p, cfg
}
