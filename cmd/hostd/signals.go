package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// stopSignals returns a context that SIGTERM (systemctl stop) or SIGINT
// cancels; stop stops catching them.
func stopSignals() (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

// reloadSignals turns every SIGHUP (systemctl reload) into a reload request
// until ctx is done. A request waits while one is being applied; more
// SIGHUPs meanwhile merge into it. stop stops catching SIGHUP.
func reloadSignals(ctx context.Context) (reload <-chan struct{}, stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case out <- struct{}{}:
				default: // a reload is already queued
				}
			}
		}
	}()
	return out, func() { signal.Stop(hup) }
}
