package plugin

import (
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// replicationStateTTL is how long an answer of Vault about the node's
// replication state is taken as still true.
const replicationStateTTL = time.Second

// cachedSystemView is Vault's system view with ReplicationState answered from
// memory for up to replicationStateTTL. The framework asks for the state on
// every request, to send writes on a performance standby to the active node,
// and for a plugin each ask is a round trip to Vault: as costly as the one
// storage read of a creds read. The state of a node changes only on a
// failover or promotion, after which Vault sets the mount up anew; the TTL
// bounds how long a change can go unseen anyway.
type cachedSystemView struct {
	logical.SystemView
	now func() time.Time

	mu    sync.Mutex
	state consts.ReplicationState
	asked time.Time // zero until first asked
}

func newCachedSystemView(sys logical.SystemView, now func() time.Time) *cachedSystemView {
	return &cachedSystemView{SystemView: sys, now: now}
}

// ReplicationState returns the node's replication state, asking Vault at
// most once per replicationStateTTL.
func (v *cachedSystemView) ReplicationState() consts.ReplicationState {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if v.asked.IsZero() || now.Sub(v.asked) >= replicationStateTTL || now.Before(v.asked) {
		v.state = v.SystemView.ReplicationState()
		v.asked = now
	}
	return v.state
}
