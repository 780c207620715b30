package render

// Starts reports how many consul-template runners were started.
func (r *Renderer) Starts() int { return int(r.starts.Load()) }
