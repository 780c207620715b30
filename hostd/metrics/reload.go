package metrics

import "github.com/sigsci-keys/sigsci-keys/hostd/event"

// reload records the outcome of a configuration load and deletes every
// series of a template or unit the running configuration no longer has:
// a series nobody updates any more would be read as current (a
// unit_restart_pending of 1 for a batch the reload dropped is a false
// alert).
func (m *Metrics) reload(e event.Reload) {
	if e.OK {
		m.reloadOK.Set(1)
		m.reloadSuccess.Set(unixSeconds(e.Time))
	} else {
		m.reloadOK.Set(0)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range gone(m.templates, e.Templates) {
		m.renders.DeletePartialMatch(map[string]string{"template": t})
		m.lastRender.DeleteLabelValues(t)
		m.lastChange.DeleteLabelValues(t)
		m.lastRenderOK.DeleteLabelValues(t)
		delete(m.templates, t)
	}
	for _, u := range gone(m.units, e.Units) {
		m.restarts.DeletePartialMatch(map[string]string{"unit": u})
		m.restartDuration.DeleteLabelValues(u)
		m.rollbacks.DeleteLabelValues(u)
		m.restartPending.DeleteLabelValues(u)
		m.restartDue.DeleteLabelValues(u)
		delete(m.lastPending, u)
		delete(m.units, u)
	}
}

// inUse records a template or unit label value.
func (m *Metrics) inUse(set map[string]bool, value string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set[value] = true
}

// gone returns the values of inUse that keep does not list.
func gone(inUse map[string]bool, keep []string) []string {
	kept := make(map[string]bool, len(keep))
	for _, k := range keep {
		kept[k] = true
	}
	var out []string
	for v := range inUse {
		if !kept[v] {
			out = append(out, v)
		}
	}
	return out
}
