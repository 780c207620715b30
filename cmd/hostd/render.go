package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/daemon"
)

// runRender is `hostd render`: every template rendered and written once,
// no restart, for image baking, first boot and checking a template in CI.
func runRender(args []string, stdout, stderr io.Writer) int {
	fs := newConfigFlags("render", stderr)
	timeout := fs.Duration("timeout", time.Minute, "give up on Vault (the login and every secret) after this `duration`")
	cfg, code := fs.load(args, "hostd render")
	if cfg == nil {
		return code
	}
	logger, _ := daemon.NewLogger(stderr, cfg.Log)

	ctx, stop := stopSignals()
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, *timeout, fmt.Errorf("-timeout %s passed", *timeout))
	defer cancel()
	started := time.Now()
	outcomes, err := daemon.RenderOnce(ctx, cfg, logger)
	failed := 0
	for _, o := range outcomes {
		result := "unchanged"
		switch {
		case o.Err != "":
			result, failed = "failed: "+o.Err, failed+1
		case o.Changed:
			result = "changed"
		}
		fmt.Fprintf(stdout, "%s\t%s\n", o.Destination, result)
	}
	switch {
	case failed > 0:
		fmt.Fprintf(stderr, "hostd render: %d of %d template(s) not written; their files are as they were\n", failed, len(outcomes))
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "hostd render: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "rendered %d template(s) in %s; no unit was restarted\n", len(outcomes), time.Since(started).Round(time.Millisecond))
	return exitOK
}
