package plugin

import (
	"reflect"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

func TestPromoteKeepsTheOldPrimaryAndIsIdempotent(t *testing.T) {
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
