package rollout

// BatchesStarted is how many batches Run has started, for tests that must
// show a restart did not begin.
func (r *Rollout) BatchesStarted() int { return r.batchesStarted() }

// Poke makes Run look at its schedule now, as a Submit would.
func (r *Rollout) Poke() { r.poke() }
