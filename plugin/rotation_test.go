package plugin

import (
	"reflect"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

func TestNewKeySets_SortsWhatAppearedSinceBefore(t *testing.T) {
	stored := &storedKeys{AccessKey: "p0", NonPrimary: []keyRecord{{AccessKey: "n0"}}}
	after := []sigsci.KeySet{
		{AccessKey: "n0"},                // listed before
		{AccessKey: "p0"},                // listed before (was primary)
		{AccessKey: "x1"},                // new, not primary, untracked: stray
		{AccessKey: "p1", Primary: true}, // new primary
		{AccessKey: "n9"},                // new but tracked by Vault: never a stray
	}
	stored.NonPrimary = append(stored.NonPrimary, keyRecord{AccessKey: "n9"})
	fresh, strays := newKeySets(after, []string{"n0", "p0"}, stored)
	if fresh == nil || fresh.AccessKey != "p1" {
		t.Fatalf("fresh = %v", fresh)
	}
	if !reflect.DeepEqual(strays, []string{"x1"}) {
		t.Fatalf("strays = %v", strays)
	}

	fresh, strays = newKeySets(after[:2], []string{"n0", "p0"}, stored)
	if fresh != nil || len(strays) != 0 {
		t.Fatalf("nothing new: fresh %v strays %v", fresh, strays)
	}
}

func TestPromote_KeepsTheOldPrimaryAndIsIdempotent(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	k := &storedKeys{AccessKey: "a", SecretKey: "sa", Created: t0, NonPrimary: []keyRecord{{AccessKey: "b", SecretKey: "sb"}}}

	k.promote(sigsci.KeySet{AccessKey: "b", SecretKey: "sb"}, t1)
	if k.AccessKey != "b" || k.SecretKey != "sb" || !k.Created.Equal(t1) {
		t.Fatalf("primary after promote: %v", k)
	}
	want := []keyRecord{{AccessKey: "a", SecretKey: "sa", Stored: t0, DemotedAt: t1}}
	if !reflect.DeepEqual(k.NonPrimary, want) {
		t.Fatalf("non-primary after promote: %v, want %v", k.NonPrimary, want)
	}
	k.promote(sigsci.KeySet{AccessKey: "b", SecretKey: "sb"}, t1.Add(time.Hour))
	if !k.Created.Equal(t1) || !reflect.DeepEqual(k.NonPrimary, want) {
		t.Fatal("promoting the current primary again changed something")
	}
}

func TestStoredKeys_FormattingHidesSecrets(t *testing.T) {
	k := storedKeys{AccessKey: "a", SecretKey: "very-secret", NonPrimary: []keyRecord{{AccessKey: "b", SecretKey: "also-secret"}}}
	for _, s := range []string{k.String(), k.GoString(), k.NonPrimary[0].String()} {
		if len(s) == 0 || containsAny(s, "very-secret", "also-secret") {
			t.Fatalf("formatted keys show a secret: %s", s)
		}
	}
}
