package render

// This file is consul-template's write adapter: each rendered file goes
// through hostd/write, and the files that changed are handed on per unit
// once every template of that unit has rendered.

import (
	"fmt"
	"sort"

	"github.com/hashicorp/consul-template/renderer"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// Change says that a unit's file changed on disk.
type Change struct {
	Unit, Destination string
	// Previous is what the file held before the first change not yet
	// handed to OnChange; nil when there was no file.
	Previous *write.Snapshot
}

// writeFile is consul-template's RendererFunc: hostd/write does the write.
func (r *Renderer) writeFile(in *renderer.RenderInput) (*renderer.RenderResult, error) {
	t, ok := r.byDest[in.Path]
	if !ok {
		return nil, fmt.Errorf("no template writes %s", in.Path)
	}
	if r.opts.Refuse != nil {
		if err := r.opts.Refuse(t.Destination, in.Contents); err != nil {
			return nil, err
		}
	}
	res, err := write.Write(t.Destination, in.Contents, write.Options{
		Perms: t.Perms, User: t.User, Group: t.Group, Backup: t.Backup,
	})
	if err != nil {
		return nil, err // consul-template records it; publishTemplateErrors reports it
	}
	r.sources.wrote(r.opts.Keys, t.Destination, in.Contents)
	now := r.opts.Now()
	r.mu.Lock()
	r.rendered[t.Destination] = true
	if res.Changed && t.Unit != "" {
		c := Change{Unit: t.Unit, Destination: t.Destination, Previous: res.Previous}
		if earlier, ok := r.pending[t.Destination]; ok {
			c.Previous = earlier.Previous // the unit has not run on the in-between content
		}
		r.pending[t.Destination] = c
	}
	r.mu.Unlock()
	if res.Changed {
		r.opts.Logger.Info("rendered template", "destination", t.Destination, "unit", t.Unit)
	}
	r.opts.Sink.Publish(event.Render{Time: now, Template: t.Destination, Unit: t.Unit, Changed: res.Changed, Backup: res.Backup})
	return &renderer.RenderResult{DidRender: res.Changed, WouldRender: true, Contents: in.Contents}, nil
}

// reportCompleteUnits hands the pending changes of every unit whose templates
// have all rendered to OnChange, in one batch.
func (r *Renderer) reportCompleteUnits() {
	r.mu.Lock()
	var batch []Change
	for _, dests := range r.unitDests {
		if !r.allRendered(dests) {
			continue
		}
		for _, d := range dests {
			if c, ok := r.pending[d]; ok {
				batch = append(batch, c)
				delete(r.pending, d)
			}
		}
	}
	r.mu.Unlock()
	if len(batch) == 0 || r.opts.OnChange == nil {
		return
	}
	sort.Slice(batch, func(i, j int) bool {
		if batch[i].Unit != batch[j].Unit {
			return batch[i].Unit < batch[j].Unit
		}
		return batch[i].Destination < batch[j].Destination
	})
	r.opts.OnChange(batch)
}

func (r *Renderer) allRendered(dests []string) bool {
	for _, d := range dests {
		if !r.rendered[d] {
			return false
		}
	}
	return true
}
