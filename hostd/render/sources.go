package render

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	ctconfig "github.com/hashicorp/consul-template/config"
	"github.com/hashicorp/consul-template/manager"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
)

// This file tells which sigsci creds secrets, and which access key of each,
// a destination's content was rendered from (event.Content), from Vault's
// answers and consul-template's dependencies, never from the file.
//
// consul-template does not say which answer a render used. But a runner's
// templates can only have been rendered from answers given after the runner
// was created: each runner has its own store of answers. So when every
// answer for a secret since then carries the same access key, the content
// holds that key. When two keys were answered (a rotation arrived while the
// runner ran), the content may hold either: it is published with the key
// unknown, and a new runner reads every secret again, after which there is
// one key again.

// KeyLog is what the proxy saw of Vault's answers for sigsci creds secrets;
// *vaultproxy.Proxy is one.
type KeyLog interface {
	// Mark returns the position of the next answer.
	Mark() uint64
	// AccessKeys returns the distinct access keys answered for path from
	// position since on; "" for an answer whose key could not be read;
	// empty when path is no creds secret or had no answer.
	AccessKeys(path string, since uint64) []string
}

// sources keeps, for the runner that runs now, what its content came from.
type sources struct {
	mu   sync.Mutex
	mark uint64 // the KeyLog's position when the runner was created
	// written: destination → digest of the content this runner last wrote
	// or found in place.
	written map[string]string
	// published: destination → the last event.Content published, to
	// publish a destination again only when what it came from changed.
	published map[string]string
}

// begin starts over for a new runner; call it before the runner starts.
func (s *sources) begin(log KeyLog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mark = log.Mark()
	s.written = map[string]string{}
}

// wrote records that destination holds content with digest.
func (s *sources) wrote(destination, digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = map[string]string{}
	}
	s.written[destination] = digest
}

// contents returns an event.Content for each template that rendered in
// events and came from something new, and whether an access key could not
// be told because two were answered since the runner started.
func (s *sources) contents(log KeyLog, events map[string]*manager.RenderEvent, templates map[string]Template, now time.Time) ([]event.Content, bool) {
	var out []event.Content
	rotated := false
	for _, ev := range events {
		if ev == nil || ev.Error != nil || !ev.WouldRender || len(ev.TemplateConfigs) == 0 || ev.UsedDeps == nil {
			continue
		}
		dest := ctconfig.StringVal(ev.TemplateConfigs[0].Destination)
		// The digest first, then the answers: every answer the content
		// can have come from was logged before it was written.
		s.mu.Lock()
		digest, ok := s.written[dest]
		mark := s.mark
		s.mu.Unlock()
		if !ok {
			continue
		}
		c := event.Content{Time: now, Template: dest, Unit: templates[dest].Unit, Digest: digest}
		for _, d := range ev.UsedDeps.List() {
			creds, twoKeys, ok := credsOf(log, d.String(), mark)
			if ok {
				c.Creds = append(c.Creds, creds)
				rotated = rotated || twoKeys
			}
		}
		slices.SortFunc(c.Creds, func(a, b event.Creds) int {
			return strings.Compare(a.Mount+"/"+a.Role+"/"+a.Site, b.Mount+"/"+b.Role+"/"+b.Site)
		})
		if s.novel(c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b event.Content) int { return strings.Compare(a.Template, b.Template) })
	return out, rotated
}

// novel reports whether c differs from the last Content of its destination,
// and records it.
func (s *sources) novel(c event.Content) bool {
	key := fmt.Sprintf("%s %v", c.Digest, c.Creds)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.published == nil {
		s.published = map[string]string{}
	}
	if s.published[c.Template] == key {
		return false
	}
	s.published[c.Template] = key
	return true
}

// credsOf is the creds secret behind consul-template dependency dep, with
// its access key if one key only was answered since mark. ok is false for a
// dependency that is no sigsci creds secret; twoKeys says that two keys were
// answered.
func credsOf(log KeyLog, dep string, mark uint64) (creds event.Creds, twoKeys, ok bool) {
	path, ok := vaultPath(dep)
	if !ok {
		return creds, false, false
	}
	secret, ok := vaultproxy.ParseCredsPath(path)
	if !ok {
		return creds, false, false
	}
	keys := log.AccessKeys(path, mark)
	if len(keys) == 0 {
		return creds, false, false
	}
	creds = event.Creds{Mount: secret.Mount, Role: secret.Role, Site: secret.Site}
	if len(keys) == 1 {
		creds.AccessKey = keys[0]
	}
	known := 0
	for _, k := range keys {
		if k != "" {
			known++
		}
	}
	return creds, known > 1, true
}

// vaultPath reads the Vault path of a consul-template dependency:
// "vault.read(<path>)" or "vault.write(<path> -> <hash>)".
func vaultPath(dep string) (string, bool) {
	if inner, ok := strings.CutPrefix(dep, "vault.read("); ok {
		return strings.TrimSuffix(inner, ")"), true
	}
	if inner, ok := strings.CutPrefix(dep, "vault.write("); ok {
		path, _, _ := strings.Cut(strings.TrimSuffix(inner, ")"), " -> ")
		return path, true
	}
	return "", false
}

// publishContents publishes what each rendered destination came from and,
// when a key could not be told, has a new runner read every secret again.
func (r *Renderer) publishContents(events map[string]*manager.RenderEvent) {
	if r.opts.Keys == nil {
		return
	}
	contents, rotated := r.sources.contents(r.opts.Keys, events, r.byDest, r.opts.Now())
	for _, c := range contents {
		r.opts.Sink.Publish(c)
	}
	if rotated {
		r.opts.Logger.Info("a new access key arrived while templates rendered: reading every secret again to know which key each file holds")
		r.Refresh()
	}
}
