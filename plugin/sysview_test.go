package plugin

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
)

// countingSystemView counts how often Vault is asked for the replication state.
type countingSystemView struct {
	*logical.StaticSystemView
	asked atomic.Int64
}

func (v *countingSystemView) ReplicationState() consts.ReplicationState {
	v.asked.Add(1)
	return v.StaticSystemView.ReplicationState()
}

func TestCachedSystemViewAsksVaultOncePerTTL(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	sys := &countingSystemView{StaticSystemView: &logical.StaticSystemView{}}
	v := newCachedSystemView(sys, clock.Now)
	for range 100 {
		if got := v.ReplicationState(); got != 0 {
			t.Fatalf("state %v, want none", got)
		}
	}
	if n := sys.asked.Load(); n != 1 {
		t.Fatalf("asked Vault %d times within the TTL, want 1", n)
	}
	sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	clock.Add(replicationStateTTL)
	if got := v.ReplicationState(); got != consts.ReplicationPerformanceStandby {
		t.Fatalf("after the TTL the state is %v, want the new one", got)
	}
}

// The engine Vault runs asks for the replication state once per TTL, not
// once per request as the framework does.
func TestNewFactoryRequestsDoNotEachAskForTheReplicationState(t *testing.T) {
	conf := logical.TestBackendConfig()
	sys := &countingSystemView{StaticSystemView: conf.System.(*logical.StaticSystemView)}
	conf.System = sys
	b, err := runFactory(t, "v0.1.0", conf)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Cleanup(context.Background())
	const reads = 50
	for range reads {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: "config", Storage: &logical.InmemStorage{},
		})
		if err != nil || resp.IsError() {
			t.Fatalf("read config: %v %v", err, resp)
		}
	}
	if n := sys.asked.Load(); n >= reads {
		t.Fatalf("%d reads asked Vault for the replication state %d times", reads, n)
	}
}
