package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// startTelemetry serves the metrics on addr as its own part. The address is
// bound here, so a port in use is reported at once.
func (d *daemon) startTelemetry(ctx context.Context, addr string) (*part, error) {
	if addr == "" {
		d.logger.Info("metrics endpoint disabled")
		return nil, nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.metrics.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hostd: metrics at /metrics\n")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	d.logger.Info("metrics endpoint listening", "address", ln.Addr().String())
	return launch(ctx, "metrics endpoint", d.failed, func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
		<-errc
		return nil
	}), nil
}

// replaceTelemetry moves the metrics endpoint to a new address: the new one
// is bound before the old one is closed, and a failure keeps the old one.
func (d *daemon) replaceTelemetry(ctx context.Context, addr string) {
	p, err := d.startTelemetry(ctx, addr)
	if err != nil {
		d.logger.Error("metrics endpoint: new address failed; keeping the old one", "err", err)
		return
	}
	d.cur.telemetry.stop()
	d.cur.telemetry, d.cur.telemetryAddr = p, addr
}
