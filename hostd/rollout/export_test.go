package rollout

// BatchesStarted is how many batches Run has started, for tests that must
// show a restart did not begin.
func (r *Rollout) BatchesStarted() int { return r.batchesStarted() }

// Poke makes Run look at its schedule now, as a Submit would.
func (r *Rollout) Poke() { r.poke() }

// PendingUnits is the units with a batch waiting for its time.
func (r *Rollout) PendingUnits() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var units []string
	for unit := range r.pending {
		units = append(units, unit)
	}
	return units
}

// Restarting is how many units are being restarted now; a batch counts
// until it has published what the unit runs and recorded its end.
func (r *Rollout) Restarting() int { return r.restarting() }
