package host

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

// frontEnd stands where a load balancer stands in front of Vault: an
// address of its own that relays every TCP connection to the real Vault
// while it is up, and where nothing listens (connections are refused)
// while it is down, as when a host boots before Vault is reachable.
type frontEnd struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startFrontEnd puts a front end, up, before the Vault at vaultAddr; it
// goes down for good when t ends.
func startFrontEnd(t *testing.T, vaultAddr string) *frontEnd {
	t.Helper()
	u, err := url.Parse(vaultAddr)
	if err != nil {
		t.Fatal(err)
	}
	f := &frontEnd{addr: harness.FreeLoopbackAddr(t), target: u.Host, conns: map[net.Conn]struct{}{}}
	f.Up(t)
	t.Cleanup(func() {
		f.Down()
		f.wg.Wait()
	})
	return f
}

// URL is the front end's address, for hostd.hcl.
func (f *frontEnd) URL() string { return "http://" + f.addr }

// Up listens on the front end's address again.
func (f *frontEnd) Up(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		return
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		t.Fatalf("bringing Vault's front end up on %s: %v", f.addr, err)
	}
	f.ln = ln
	f.wg.Add(1)
	go f.accept(ln)
}

// Down stops listening and cuts every relayed connection.
func (f *frontEnd) Down() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
	}
}

func (f *frontEnd) accept(ln net.Listener) {
	defer f.wg.Done()
	for {
		client, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		f.wg.Add(1)
		go f.relay(client)
	}
}

func (f *frontEnd) relay(client net.Conn) {
	defer f.wg.Done()
	server, err := net.Dial("tcp", f.target)
	if err != nil {
		client.Close()
		return
	}
	if !f.track(client, server) {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	client.Close()
	server.Close()
	<-done
	f.mu.Lock()
	delete(f.conns, client)
	delete(f.conns, server)
	f.mu.Unlock()
}

// track records a relayed pair so Down can cut it; a pair that arrives
// while the front end goes down is cut at once.
func (f *frontEnd) track(conns ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		f.conns[c] = struct{}{}
	}
	return true
}
