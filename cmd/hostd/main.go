// Command hostd keeps a WAF agent's keys fresh on its host: it logs in to
// Vault, renders the agent's configuration, restarts the agent when the keys
// change, and answers `hostd status`. This file only wires flags, logging and
// subcommands, and signals.go turns signals into a stop and reload requests;
// the work is done in the hostd/... packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/daemon"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

// defaultConfig is where packages install hostd's configuration.
const defaultConfig = "/etc/hostd/hostd.hcl"

// Exit codes.
const (
	exitOK        = 0
	exitFailure   = 1 // run failed, configuration invalid, or status unhealthy
	exitUnknown   = 2 // status unreachable, or a usage error
	exitUnhealthy = exitFailure
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runDaemon(args, stderr)
	case "status":
		return runStatus(args, stdout, stderr)
	case "refresh":
		return runRefresh(args, stdout, stderr)
	case "validate":
		return runValidate(args, stdout, stderr)
	case "render":
		return runRender(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "hostd %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "hostd: unknown command %q\n", cmd)
		usage(stderr)
		return exitUnknown
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  hostd [run] [-config FILE]                 run the daemon (default command)
  hostd status [-json] [-socket PATH]        show the daemon's state; exit 0 healthy, 1 unhealthy, 2 unreachable
  hostd refresh [-socket PATH]               read every secret again now and wait for the renders;
                                             exit 0 when all rendered, 1 on a template error, 2 unreachable
  hostd validate [-config FILE]              check a configuration file; exit 1 if it has problems
  hostd render [-config FILE] [-timeout D]   log in, render and write every template once, restart nothing;
                                             exit 0 when all were written, 1 otherwise (image baking, first boot, CI)
  hostd version                              print the version
`)
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hostd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and refuses leftover arguments; it returns false after
// printing what was wrong.
func parse(fs *flag.FlagSet, args []string) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false
	}
	return true
}

// configFlags is the flag set of a command that works from a
// configuration file: -config, and the flags the command adds.
type configFlags struct {
	*flag.FlagSet
	path *string
}

func newConfigFlags(name string, stderr io.Writer) configFlags {
	fs := newFlags(name, stderr)
	return configFlags{FlagSet: fs, path: fs.String("config", defaultConfig, "configuration `file`")}
}

// load parses args and loads the configuration file -config names. When
// either fails it has said why (a load error after prefix) and returns no
// configuration and the exit code.
func (fs configFlags) load(args []string, prefix string) (*config.Config, int) {
	if !parse(fs.FlagSet, args) {
		return nil, exitUnknown
	}
	cfg, err := config.Load(*fs.path)
	if err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", prefix, err)
		return nil, exitFailure
	}
	return cfg, exitOK
}

func runDaemon(args []string, stderr io.Writer) int {
	cfg, code := newConfigFlags("run", stderr).load(args, "hostd")
	if cfg == nil {
		return code
	}
	logger, level := daemon.NewLogger(stderr, cfg.Log)

	ctx, stop := stopSignals()
	defer stop()
	reload, stopReloads := reloadSignals(ctx)
	defer stopReloads()
	if err := daemon.Run(ctx, cfg, logger, version, reload, daemon.WithLogLevel(level)); err != nil {
		logger.Error("hostd failed", "err", err)
		return exitFailure
	}
	return exitOK
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the state as JSON")
	socket := fs.String("socket", config.DefaultSocketPath, "status socket `path`")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	if !parse(fs, args) {
		return exitUnknown
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	snap, err := status.Fetch(ctx, *socket)
	if err != nil {
		fmt.Fprintf(stderr, "hostd status: cannot reach hostd: %v\n", err)
		return exitUnknown
	}
	write := status.WriteTable
	if *asJSON {
		write = status.WriteJSON
	}
	if err := write(stdout, snap); err != nil {
		fmt.Fprintf(stderr, "hostd status: %v\n", err)
		return exitUnknown
	}
	if healthy, _ := status.Healthy(snap); !healthy {
		return exitUnhealthy
	}
	return exitOK
}

func runRefresh(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("refresh", stderr)
	socket := fs.String("socket", config.DefaultSocketPath, "status socket `path`")
	timeout := fs.Duration("timeout", time.Minute, "give up waiting for the renders after this `duration`")
	if !parse(fs, args) {
		return exitUnknown
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	report, err := status.Refresh(ctx, *socket)
	var notAsked *status.AskError
	switch {
	case errors.As(err, &notAsked):
		fmt.Fprintf(stderr, "hostd refresh: %v\n", err)
		return exitUnknown
	case err != nil:
		fmt.Fprintf(stderr, "hostd refresh: %v\n", err)
		return exitFailure
	}
	if err := status.WriteRefresh(stdout, report); err != nil {
		fmt.Fprintf(stderr, "hostd refresh: %v\n", err)
		return exitFailure
	}
	if report.Failed() > 0 {
		return exitFailure
	}
	return exitOK
}

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newConfigFlags("validate", stderr)
	if !parse(fs.FlagSet, args) {
		return exitUnknown
	}
	path := *fs.path
	cfg, err := config.Load(path)
	var cfgErr *config.Error
	switch {
	case errors.As(err, &cfgErr):
		for _, p := range cfgErr.Problems {
			fmt.Fprintln(stderr, p.String())
		}
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(cfgErr.Problems))
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "hostd validate: %v\n", err)
		return exitFailure
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, "warning: "+w.String())
	}
	if err := daemon.CheckTemplates(cfg); err != nil {
		lines := strings.Split(err.Error(), "\n")
		for _, line := range lines {
			fmt.Fprintf(stderr, "%s: %s\n", path, line)
		}
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(lines))
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s: valid (%d template(s), auth %s, vault %s)\n", path, len(cfg.Templates), cfg.AutoAuth.Method, cfg.Vault.Address)
	return exitOK
}
