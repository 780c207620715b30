package render

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	ctconfig "github.com/hashicorp/consul-template/config"
	"github.com/hashicorp/consul-template/manager"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
)

// This file tells which sigsci creds secrets, and which access key of each,
// a destination's content was rendered from (event.Content), from Vault's
// answers and consul-template's dependencies, never from the file.
//
// consul-template does not say which answer a render used. But a runner's
// templates can only have been rendered from answers given after the runner
// was created and before the content was written: each runner has its own
// store of answers. So when every answer for a secret since then carries the
// same access key, the content holds that key. When a rotation brought a
// second key while the runner ran, the content holds the one of those keys
// whose access key id it shows (the agent's template prints it), so the read
// that brought a new key is the only one it costs. Only when the content
// shows none or several of them is it published with the key unknown, and a
// new runner reads every secret again, after which there is one key again.

// KeyLog is what the proxy saw of Vault's answers for sigsci creds secrets;
// *vaultproxy.Proxy is one.
type KeyLog interface {
	// Mark returns the position of the next answer.
	Mark() uint64
	// AccessKeys returns the distinct access keys answered for path from
	// position since on; "" for an answer whose key could not be read;
	// empty when path is no creds secret or had no answer.
	AccessKeys(path string, since uint64) []string
	// AnsweredKeys returns the distinct access keys answered for any path
	// from position since on, without "".
	AnsweredKeys(since uint64) []string
}

// sources keeps, for the runner that runs now, what its content came from.
type sources struct {
	mu   sync.Mutex
	mark uint64 // the KeyLog's position when the runner was created
	// written: destination → the content this runner last wrote or found
	// in place.
	written map[string]writtenContent
	// published: destination → the last event.Content published, to
	// publish a destination again only when what it came from changed.
	published map[string]string
}

// begin starts over for a new runner; call it before the runner starts.
func (s *sources) begin(log KeyLog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mark = log.Mark()
	s.written = map[string]writtenContent{}
}

// writtenContent is what sources keeps of a content: never the content
// itself.
type writtenContent struct {
	digest string
	// shown: the access keys answered since the runner was created, up to
	// the write, whose id the content holds.
	shown map[string]bool
}

// wrote records that destination holds content; log is nil when the
// renderer has no KeyLog.
func (s *sources) wrote(log KeyLog, destination string, content []byte) {
	w := writtenContent{digest: running.Digest(content), shown: map[string]bool{}}
	s.mu.Lock()
	mark := s.mark
	s.mu.Unlock()
	if log != nil {
		for _, key := range log.AnsweredKeys(mark) {
			if bytes.Contains(content, []byte(key)) {
				w.shown[key] = true
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = map[string]writtenContent{}
	}
	s.written[destination] = w
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
		w, ok := s.written[dest]
		mark := s.mark
		s.mu.Unlock()
		if !ok {
			continue
		}
		c := event.Content{Time: now, Template: dest, Unit: templates[dest].Unit, Digest: w.digest}
		for _, d := range ev.UsedDeps.List() {
			creds, twoKeys, ok := credsOf(log, d.String(), mark, w.shown)
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
// the access key of a content that shows the keys in shown (keyOf). ok is
// false for a dependency that is no sigsci creds secret; twoKeys says that
// two keys were answered since mark and the content does not tell which it
// holds.
func credsOf(log KeyLog, dep string, mark uint64, shown map[string]bool) (creds event.Creds, twoKeys, ok bool) {
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
	creds.AccessKey, twoKeys = keyOf(keys, shown)
	return creds, twoKeys, true
}

// keyOf is the access key a content holds of keys, those answered for one
// secret since its runner was created: the one key answered or, after a
// rotation, the one of them the content shows. It is "" when that cannot be
// told; twoKeys then says whether a new runner would tell it: it would after
// a rotation, not for an answer whose key could not be read.
func keyOf(keys []string, shown map[string]bool) (key string, twoKeys bool) {
	if len(keys) == 1 {
		return keys[0], false
	}
	if slices.Contains(keys, "") {
		return "", len(keys) > 2
	}
	var found []string
	for _, k := range keys {
		if shown[k] {
			found = append(found, k)
		}
	}
	if len(found) == 1 {
		return found[0], false
	}
	return "", true
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
