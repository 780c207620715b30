// Command sigsci-sim serves the Signal Sciences API simulator (package
// sigscisim) on a loopback address, for demos and end-to-end tests. It prints
// its base URL on stdout once it accepts connections (the API root is that URL
// followed by /api/v0, the controls are under /sim/) and stops cleanly on
// SIGINT or SIGTERM. It owns no state beyond the running simulator.
//
//	sigsci-sim -listen 127.0.0.1:8085 -seed seed.json
//	sigsci-sim -corp acme -user ops@acme.test -token-file token.txt -sites www,api
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sigsci-sim:", err)
		os.Exit(1)
	}
}

type options struct {
	listen     string
	seedFile   string
	corp       string
	user       string
	token      string
	tokenFile  string
	sites      string
	latency    time.Duration
	rateLimit  int
	retryAfter int
	addrFile   string
	verbose    bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("sigsci-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8085", "loopback `address` to listen on (port 0 picks a free port)")
	fs.StringVar(&o.seedFile, "seed", "", "JSON seed `file` (corps, users, sites, faults); excludes -corp/-user/-token/-sites")
	fs.StringVar(&o.corp, "corp", "", "corp `name` to create (without -seed)")
	fs.StringVar(&o.user, "user", "", "API user `email` of that corp")
	fs.StringVar(&o.token, "token", "", "API `token` of that user (prefer -token-file: command lines are visible to other users)")
	fs.StringVar(&o.tokenFile, "token-file", "", "`file` holding the API token")
	fs.StringVar(&o.sites, "sites", "", "comma-separated site `names` of that corp")
	fs.DurationVar(&o.latency, "latency", 0, "delay every API call by this `duration`")
	fs.IntVar(&o.rateLimit, "rate-limit", 0, "API calls allowed per user per second (0: no limit)")
	fs.IntVar(&o.retryAfter, "retry-after", -1, "Retry-After `seconds` sent with 429 answers; -1 keeps the seed's value (1 if unset)")
	fs.StringVar(&o.addrFile, "addr-file", "", "also write the base URL to this `file` once ready")
	fs.BoolVar(&o.verbose, "v", false, "log every API call (method, path, status; never headers) on stderr")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: sigsci-sim [flags]\n\nServes the Signal Sciences API simulator; prints its base URL on stdout when ready.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

func (o options) seed() (sigscisim.Seed, error) {
	flagged := o.corp != "" || o.user != "" || o.token != "" || o.tokenFile != "" || o.sites != ""
	var seed sigscisim.Seed
	switch {
	case o.seedFile != "" && flagged:
		return seed, errors.New("-seed cannot be combined with -corp, -user, -token, -token-file or -sites")
	case o.seedFile != "":
		s, err := sigscisim.LoadSeed(o.seedFile)
		if err != nil {
			return seed, err
		}
		seed = s
	case flagged:
		s, err := o.flagSeed()
		if err != nil {
			return seed, err
		}
		seed = s
	default:
		return seed, errors.New("give -seed file.json, or -corp, -user, -token (or -token-file) and -sites")
	}
	if o.latency != 0 {
		seed.Faults.Latency = sigscisim.Duration(o.latency)
	}
	if o.rateLimit != 0 {
		seed.Faults.RateLimit = o.rateLimit
	}
	if o.retryAfter >= 0 {
		ra := o.retryAfter
		seed.Faults.RetryAfter = &ra
	}
	if err := seed.Validate(); err != nil {
		return seed, err
	}
	return seed, nil
}

func (o options) flagSeed() (sigscisim.Seed, error) {
	token := o.token
	if o.tokenFile != "" {
		if token != "" {
			return sigscisim.Seed{}, errors.New("give -token or -token-file, not both")
		}
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return sigscisim.Seed{}, fmt.Errorf("reading the token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if o.corp == "" || o.user == "" || token == "" {
		return sigscisim.Seed{}, errors.New("-corp, -user and -token (or -token-file) are all needed without -seed")
	}
	c := sigscisim.CorpSeed{Name: o.corp, Users: []sigscisim.UserSeed{{Email: o.user, Token: token}}}
	for _, s := range strings.Split(o.sites, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Sites = append(c.Sites, sigscisim.SiteSeed{Name: s})
		}
	}
	return sigscisim.Seed{Corps: []sigscisim.CorpSeed{c}}, nil
}

// listenLoopback refuses addresses other machines could reach: the control
// endpoints have no authentication.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-listen %q: %w", addr, err)
	}
	if !sigsci.LoopbackHost(host) {
		return nil, fmt.Errorf("-listen %q: only loopback addresses (127.0.0.1, ::1, localhost) are allowed", addr)
	}
	return net.Listen("tcp", addr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	seed, err := o.seed()
	if err != nil {
		return err
	}
	ln, err := listenLoopback(o.listen)
	if err != nil {
		return err
	}
	var handler http.Handler = sigscisim.New(seed)
	if o.verbose {
		handler = logCalls(handler, stderr)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	base := "http://" + ln.Addr().String()
	if o.addrFile != "" {
		if err := writeFileAtomic(o.addrFile, base+"\n"); err != nil {
			_ = srv.Close()
			return err
		}
	}
	fmt.Fprintln(stdout, base)
	fmt.Fprintf(stderr, "sigsci-sim: API root %s%s, controls %s/sim/, %s\n", base, sigscisim.APIPrefix, base, describe(seed))

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutting down: %w", err)
	}
	fmt.Fprintln(stderr, "sigsci-sim: stopped")
	return nil
}

func describe(seed sigscisim.Seed) string {
	var parts []string
	for _, c := range seed.Corps {
		parts = append(parts, fmt.Sprintf("corp %s (%d users, %d sites)", c.Name, len(c.Users), len(c.Sites)))
	}
	return strings.Join(parts, ", ")
}

func writeFileAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sigsci-sim-addr-*")
	if err != nil {
		return fmt.Errorf("writing the address file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the address file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the address file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the address file: %w", err)
	}
	return nil
}

// logCalls logs method, path and status of each request; never headers.
func logCalls(next http.Handler, w io.Writer) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: rw}
		next.ServeHTTP(rec, r)
		status := "dropped"
		if rec.status != 0 {
			status = fmt.Sprint(rec.status)
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %s %s %s\n", time.Now().UTC().Format(time.RFC3339), r.Method, r.URL.Path, status)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (to drop it).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
