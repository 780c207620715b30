package plugin

import (
	"fmt"
	"sync"
)

// entryMemo keeps decoded copies of the role entries and of the mount config,
// so that a creds read, the hot path of the engine, costs one storage round
// trip (the site's keys). A copy is dropped whenever its entry changes: by the
// write on this node, and by Invalidate on every other node. The generation
// keeps a read that raced a change from storing what it read before the
// change.
type entryMemo struct {
	mu    sync.Mutex
	gen   uint64
	roles map[string]roleEntry
	cfg   *mountConfig
}

// String names the memo, and nothing it holds.
func (m *entryMemo) String() string { return "plugin.entryMemo" }

// Format keeps the remembered roles out of every fmt verb (see
// formatRedacted).
func (m *entryMemo) Format(f fmt.State, verb rune) { formatRedacted(f, verb, m) }

func newEntryMemo() *entryMemo {
	return &entryMemo{roles: make(map[string]roleEntry)}
}

// generation is taken before reading an entry from storage.
func (m *entryMemo) generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// role returns a copy of the remembered role, if any.
func (m *entryMemo) role(name string) (*roleEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.roles[name]
	if !ok {
		return nil, false
	}
	return &r, true
}

// keepRole remembers a role read from storage at generation gen, unless an
// entry changed since.
func (m *entryMemo) keepRole(gen uint64, name string, r *roleEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen == gen {
		m.roles[name] = *r
	}
}

// config returns a copy of the remembered mount config, if any.
func (m *entryMemo) config() (*mountConfig, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg == nil {
		return nil, false
	}
	cfg := *m.cfg
	return &cfg, true
}

// keepConfig remembers the mount config read at generation gen, unless an
// entry changed since.
func (m *entryMemo) keepConfig(gen uint64, cfg *mountConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen == gen {
		kept := *cfg
		m.cfg = &kept
	}
}

// forgetRole drops the copy of one role.
func (m *entryMemo) forgetRole(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	delete(m.roles, name)
}

// forgetConfig drops the copy of the mount config.
func (m *entryMemo) forgetConfig() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	m.cfg = nil
}

// forgetAll drops every copy.
func (m *entryMemo) forgetAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	clear(m.roles)
	m.cfg = nil
}
