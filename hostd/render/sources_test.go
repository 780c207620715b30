package render

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ctconfig "github.com/hashicorp/consul-template/config"
	dep "github.com/hashicorp/consul-template/dependency"
	"github.com/hashicorp/consul-template/manager"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
)

// fakeKeyLog answers AccessKeys from a fixed table, ignoring positions.
type fakeKeyLog map[string][]string

func (fakeKeyLog) Mark() uint64                                    { return 7 }
func (l fakeKeyLog) AccessKeys(path string, since uint64) []string { return slices.Clone(l[path]) }

func (l fakeKeyLog) AnsweredKeys(since uint64) []string {
	var keys []string
	for _, ks := range l {
		for _, k := range ks {
			if k != "" && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// renderedEvent is consul-template's event for a template of dest that
// rendered from the secrets at paths.
func renderedEvent(t *testing.T, dest string, paths ...string) *manager.RenderEvent {
	t.Helper()
	used := new(dep.Set)
	for _, p := range paths {
		q, err := dep.NewVaultReadQuery(p)
		if err != nil {
			t.Fatal(err)
		}
		used.Add(q)
	}
	return &manager.RenderEvent{
		WouldRender:     true,
		UsedDeps:        used,
		TemplateConfigs: []*ctconfig.TemplateConfig{{Destination: ctconfig.String(dest)}},
	}
}

const (
	wwwCreds = "sigsci/creds/vault-user/sites/www"
	apiCreds = "sigsci/creds/vault-user/sites/api"
)

func TestContentNamesTheKeyOfEveryCredsSecretItCameFrom(t *testing.T) {
	log := fakeKeyLog{wwwCreds: {"ak-www"}, apiCreds: {"ak-api"}, "secret/data/other": nil}
	var s sources
	s.begin(log)
	s.wrote(log, "/etc/sigsci/agent.conf", []byte("d1"))
	templates := map[string]Template{"/etc/sigsci/agent.conf": {Unit: "sigsci-agent.service"}}
	events := map[string]*manager.RenderEvent{"t": renderedEvent(t, "/etc/sigsci/agent.conf", wwwCreds, "secret/data/other", apiCreds)}

	got, rotated := s.contents(log, events, templates, time.Unix(100, 0))
	want := event.Content{Time: time.Unix(100, 0), Template: "/etc/sigsci/agent.conf", Unit: "sigsci-agent.service", Digest: running.Digest([]byte("d1")), Creds: []event.Creds{
		{Mount: "sigsci", Role: "vault-user", Site: "api", AccessKey: "ak-api"},
		{Mount: "sigsci", Role: "vault-user", Site: "www", AccessKey: "ak-www"},
	}}
	if rotated || len(got) != 1 || !sameContent(got[0], want) {
		t.Fatalf("contents = %+v (rotated %v), want %+v", got, rotated, want)
	}
	if again, _ := s.contents(log, events, templates, time.Unix(200, 0)); len(again) != 0 {
		t.Fatalf("the same content again was published again: %+v", again)
	}
	s.wrote(log, "/etc/sigsci/agent.conf", []byte("d2"))
	if next, _ := s.contents(log, events, templates, time.Unix(300, 0)); len(next) != 1 || next[0].Digest != running.Digest([]byte("d2")) {
		t.Fatalf("new content: %+v", next)
	}
}

func TestContentWhileTwoKeysWereAnsweredLeavesTheKeyUnknown(t *testing.T) {
	log := fakeKeyLog{wwwCreds: {"ak-old", "ak-new"}, apiCreds: {"", "ak-api"}}
	var s sources
	s.begin(log)
	s.wrote(log, "/a.conf", []byte("secretaccesskey=only")) // shows no access key id
	s.wrote(log, "/b.conf", []byte("accesskeyid=ak-api"))
	events := map[string]*manager.RenderEvent{
		"a": renderedEvent(t, "/a.conf", wwwCreds),
		"b": renderedEvent(t, "/b.conf", apiCreds),
	}
	got, rotated := s.contents(log, events, map[string]Template{}, time.Unix(1, 0))
	if !rotated {
		t.Fatal("two keys answered for www and the content shows neither: a new runner must read every secret again")
	}
	if len(got) != 2 || got[0].Creds[0].AccessKey != "" || got[1].Creds[0].AccessKey != "" {
		t.Fatalf("contents = %+v, want both keys unknown", got)
	}

	// An unreadable answer beside one key is unknown too, but reading
	// again would not help: no new runner for it alone.
	only := map[string]*manager.RenderEvent{"b": renderedEvent(t, "/b.conf", apiCreds)}
	if _, rotated := s.contents(log, only, map[string]Template{}, time.Unix(2, 0)); rotated {
		t.Fatal("an unreadable answer asked for a new runner")
	}
}

func TestContentIsOnlyForTemplatesTheRunnerWrote(t *testing.T) {
	log := fakeKeyLog{wwwCreds: {"ak"}}
	var s sources
	s.wrote(log, "/a.conf", []byte("before the runner"))
	s.begin(log)
	failedEv := renderedEvent(t, "/b.conf", wwwCreds)
	failedEv.Error = errTest
	events := map[string]*manager.RenderEvent{"a": renderedEvent(t, "/a.conf", wwwCreds), "b": failedEv}
	if got, _ := s.contents(log, events, map[string]Template{}, time.Unix(1, 0)); len(got) != 0 {
		t.Fatalf("contents = %+v, want none: /a.conf was written by an earlier runner, /b.conf failed", got)
	}
}

var errTest = errors.New("template failed")

func TestContentAfterARotationHoldsTheKeyItShows(t *testing.T) {
	log := fakeKeyLog{wwwCreds: {"ak-old", "ak-new"}}
	var s sources
	s.begin(log)
	s.wrote(log, "/new.conf", []byte("accesskeyid=ak-new\nsecretaccesskey=secret-new\n"))
	s.wrote(log, "/both.conf", []byte("# was ak-old\naccesskeyid=ak-new\n"))
	events := map[string]*manager.RenderEvent{
		"new":  renderedEvent(t, "/new.conf", wwwCreds),
		"both": renderedEvent(t, "/both.conf", wwwCreds),
	}
	got, rotated := s.contents(log, events, map[string]Template{}, time.Unix(1, 0))
	if len(got) != 2 || got[0].Template != "/both.conf" || got[1].Template != "/new.conf" {
		t.Fatalf("contents = %+v", got)
	}
	if got[1].Creds[0].AccessKey != "ak-new" {
		t.Fatalf("the content showing ak-new only holds %q", got[1].Creds[0].AccessKey)
	}
	if got[0].Creds[0].AccessKey != "" || !rotated {
		t.Fatalf("the content showing both keys holds %q (rotated %v), want unknown and a new runner", got[0].Creds[0].AccessKey, rotated)
	}

	// A content that shows its key alone asks for no new runner.
	only := map[string]*manager.RenderEvent{"new": renderedEvent(t, "/new.conf", wwwCreds)}
	if _, rotated := s.contents(log, only, map[string]Template{}, time.Unix(2, 0)); rotated {
		t.Fatal("a content showing the one key it holds asked for a new runner")
	}
}

func sameContent(a, b event.Content) bool {
	return a.Time.Equal(b.Time) && a.Template == b.Template && a.Unit == b.Unit && a.Digest == b.Digest && slices.Equal(a.Creds, b.Creds)
}

// startCredsRenderer mounts a kv engine standing in for the sigsci engine
// at the same path, stores data at wwwCreds and runs a Renderer of the agent
// template reading it, with the proxy's key log, until the test ends. It
// returns the Renderer and the template's destination.
func (s *stack) startCredsRenderer(t *testing.T, data map[string]any) (*Renderer, string) {
	t.Helper()
	s.vault.Mount("sigsci", "kv", map[string]string{"version": "1"})
	s.vault.WritePolicy("waf", `path "secret/data/*" { capabilities = ["read"] }
path "sigsci/creds/*" { capabilities = ["read"] }`)
	s.vault.Write(wwwCreds, data)
	dest := filepath.Join(s.dir, "agent.conf")
	r, err := New(Options{
		Templates: []Template{{
			Contents:    `{{ with secret "` + wwwCreds + `" }}accesskeyid={{ .Data.accessKey }}` + "\n" + `secretaccesskey={{ .Data.secretKey }}{{ end }}` + "\n",
			Destination: dest, Unit: "sigsci-agent.service", ErrorOnMissingKey: true,
		}},
		Dialer: s.proxy, Keys: s.proxy, RefreshInterval: s.interval,
		MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
		Reporting: stage.Reporting{Sink: s.events, Logger: slog.New(slog.NewTextHandler(s.logs, nil))},
	})
	if err != nil {
		t.Fatal(err)
	}
	runtest.UntilEnd(t, 15*time.Second, context.Canceled, r.Run)
	return r, dest
}

// contentOf matches the event.Content of dest holding access key key of
// the one creds secret.
func contentOf(dest, key string) func(event.Event) bool {
	return func(e event.Event) bool {
		c, ok := e.(event.Content)
		return ok && c.Template == dest && len(c.Creds) == 1 && c.Creds[0].AccessKey == key
	}
}

// TestRenderedContentCarriesTheAccessKeyVaultAnswered runs the real path: a
// real Vault (a kv mount standing in for the sigsci engine at the same
// path), the proxy and consul-template.
func TestRenderedContentCarriesTheAccessKeyVaultAnswered(t *testing.T) {
	s := newStack(t)
	r, dest := s.startCredsRenderer(t, map[string]any{"accessKey": "ak-1", "secretKey": "secret-key-1"})

	ev, next := s.events.WaitFor(t, 0, 15*time.Second, "the content of ak-1", contentOf(dest, "ak-1"))
	c := ev.(event.Content)
	if want := (event.Creds{Mount: "sigsci", Role: "vault-user", Site: "www", AccessKey: "ak-1"}); c.Creds[0] != want || c.Unit != "sigsci-agent.service" {
		t.Fatalf("content = %+v", c)
	}
	if digest, _, _ := running.ReadDigest(dest); c.Digest != digest {
		t.Fatalf("content digest %s, file digest %s", c.Digest, digest)
	}

	// The runner that read ak-1 reads ak-2 too: the content shows which
	// one it holds, so the same runner tells it.
	s.vault.Write(wwwCreds, map[string]any{"accessKey": "ak-2", "secretKey": "secret-key-2"})
	ev, _ = s.events.WaitFor(t, next, refresh+10*time.Second, "the content of ak-2", contentOf(dest, "ak-2"))
	if r.Starts() != 1 {
		t.Fatalf("%d runner starts, want 1: the content after the rotation shows its key", r.Starts())
	}
	if digest, _, _ := running.ReadDigest(dest); ev.(event.Content).Digest != digest {
		t.Fatalf("after the rotation: content digest %s, file digest %s", ev.(event.Content).Digest, digest)
	}
	if all := fmt.Sprintf("%+v", s.events.All()); strings.Contains(all, "secret-key") {
		t.Fatal("a secret key reached an event")
	}
}

// rotatingCreds is a creds answer as the sigsci engine gives it: the keys,
// and the rotation_period and ttl hints (refresh's whole seconds).
func rotatingCreds(accessKey string) map[string]any {
	seconds := int(refresh / time.Second)
	return map[string]any{"accessKey": accessKey, "secretKey": "secret-key-of-" + accessKey, "rotation_period": seconds, "ttl": seconds}
}

// TestEveryRotationCostsOneRead rotates the keys once per refresh interval,
// the worst case: every read of the secret brings a new key. Each rotation
// must reach the file and the fleet report (an event.Content naming the
// key) from the one read that brought it, by the same runner: no second
// read of the secret, no second mount lookup of consul-template's.
func TestEveryRotationCostsOneRead(t *testing.T) {
	s := newStack(t)
	r, dest := s.startCredsRenderer(t, rotatingCreds("AK00"))
	_, next := s.events.WaitFor(t, 0, 15*time.Second, "the content of AK00", contentOf(dest, "AK00"))

	const rotations = 6
	for i := 1; i <= rotations; i++ {
		key := fmt.Sprintf("AK%02d", i)
		s.vault.Write(wwwCreds, rotatingCreds(key))
		_, next = s.events.WaitFor(t, next, 2*refresh+10*time.Second, "the content of "+key, contentOf(dest, key))
	}

	// The first read, then one per rotation; one more in case a read came
	// just before a rotation was written.
	reads, lookups := s.requests.count(wwwCreds), s.requests.count("sys/internal/ui/mounts/"+wwwCreds)
	t.Logf("%d rotations: %d reads of %s, %d mount lookups, %d runner starts", rotations, reads, wwwCreds, lookups, r.Starts())
	if reads > rotations+2 || lookups != 1 || r.Starts() != 1 {
		t.Fatalf("%d rotations cost %d reads (want at most %d), %d mount lookups (want 1) and %d runner starts (want 1)",
			rotations, reads, rotations+2, lookups, r.Starts())
	}
	for _, e := range s.events.All() {
		if c, ok := e.(event.Content); ok && (len(c.Creds) != 1 || c.Creds[0].AccessKey == "") {
			t.Fatalf("content %+v: the key of every render is known from the read that brought it", c)
		}
	}
}
