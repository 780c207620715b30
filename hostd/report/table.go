package report

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// This file is the join: what each destination's content came from
// (event.Content) with what each unit's process runs on (event.Running),
// giving the access key every unit runs for every site and, per site, the
// report to send. It holds no clock and sends nothing.

// Site is one sigsci creds secret's site: <Mount>/creds/<Role>/sites/<Site>.
type Site struct {
	Mount string `json:"mount"`
	Role  string `json:"role"`
	Site  string `json:"site"`
}

func siteOf(c event.Creds) Site { return Site{Mount: c.Mount, Role: c.Role, Site: c.Site} }

func (s Site) compare(o Site) int {
	return cmp.Or(cmp.Compare(s.Mount, o.Mount), cmp.Compare(s.Role, o.Role), cmp.Compare(s.Site, o.Site))
}

// Want is what to report for one site: the access key, and the unit that
// runs it since when (zero for a file without a unit).
type Want struct {
	Site         Site
	AccessKey    string
	Unit         string
	AgentStarted time.Time
}

// entry is one unit (or one file without a unit) running one site's key.
type entry struct {
	Unit      string    `json:"unit,omitempty"`
	Site      Site      `json:"site"`
	AccessKey string    `json:"access_key"`
	Since     time.Time `json:"since,omitzero"`
}

// keptDigests bounds the contents remembered per destination, besides the
// newest and those a unit runs on.
const keptDigests = 4

// content is what hostd knows of one destination's contents.
type content struct {
	Unit   string `json:"unit,omitempty"`
	Latest string `json:"latest"` // digest of the newest content
	// Written is when the newest content was rendered: the "since" of a
	// file without a unit.
	Written time.Time `json:"written,omitzero"`
	// Creds: digest → the creds secrets (and keys) that content came from.
	Creds map[string][]event.Creds `json:"creds"`
	Order []string                 `json:"order"` // digests, oldest first
}

// table is the join's state. Not safe for concurrent use.
type table struct {
	contents map[string]*content // destination → its contents
	// running: unit → the files its process runs on, from the last
	// event.Running; empty (present) while it is not running.
	running map[string][]event.RunningFile
	// lastKnown: unit → what it ran when last known in full; reported for
	// a unit that is not running (it keeps the key it had).
	lastKnown map[string][]entry
}

func newTable() *table {
	return &table{contents: map[string]*content{}, running: map[string][]event.RunningFile{}, lastKnown: map[string][]entry{}}
}

// addContent records what a destination's newest content came from.
func (t *table) addContent(e event.Content) {
	c := t.contents[e.Template]
	if c == nil {
		c = &content{Creds: map[string][]event.Creds{}}
		t.contents[e.Template] = c
	}
	c.Unit, c.Latest, c.Written = e.Unit, e.Digest, e.Time
	c.Creds[e.Digest] = slices.Clone(e.Creds)
	c.Order = append(slices.DeleteFunc(c.Order, func(d string) bool { return d == e.Digest }), e.Digest)
	t.trim(e.Template, c)
	t.remember()
}

// trim forgets the oldest contents of dest beyond keptDigests, except the
// newest and those a unit runs on.
func (t *table) trim(dest string, c *content) {
	for len(c.Order) > keptDigests {
		i := slices.IndexFunc(c.Order, func(d string) bool { return d != c.Latest && !t.runsOn(dest, d) })
		if i < 0 {
			return
		}
		delete(c.Creds, c.Order[i])
		c.Order = slices.Delete(c.Order, i, i+1)
	}
}

func (t *table) runsOn(dest, digest string) bool {
	for _, files := range t.running {
		for _, f := range files {
			if f.Destination == dest && f.Digest == digest {
				return true
			}
		}
	}
	return false
}

// addRunning records what a unit's process runs on.
func (t *table) addRunning(e event.Running) {
	t.remember() // what it ran until now, if it stopped
	t.running[e.Unit] = slices.Clone(e.Files)
	if e.Files == nil {
		t.running[e.Unit] = []event.RunningFile{}
	}
	t.remember()
}

// keep forgets destinations and units that are no longer configured.
func (t *table) keep(destinations, units []string) {
	for dest := range t.contents {
		if !slices.Contains(destinations, dest) {
			delete(t.contents, dest)
		}
	}
	for unit := range t.running {
		if !slices.Contains(units, unit) {
			delete(t.running, unit)
		}
	}
	for unit := range t.lastKnown {
		if !slices.Contains(units, unit) {
			delete(t.lastKnown, unit)
		}
	}
}

// resolve returns (without changing t) the access key each unit (and each
// file without a unit) runs for each site, what to report per site, and the sites that must
// wait: a unit feeding them runs content whose key hostd does not know (a
// restart is owed since before hostd started, a new key arrived during the
// render), or hostd has not yet seen what the unit runs.
func (t *table) resolve() (keys []event.AgentKey, wants []Want, waiting map[Site]bool) {
	waiting = map[Site]bool{}
	var entries []entry
	for _, unit := range slices.Sorted(maps.Keys(t.running)) {
		unitEntries, _, waits := t.unitEntries(unit)
		entries = append(entries, unitEntries...)
		for _, s := range waits {
			waiting[s] = true
		}
	}
	for _, dest := range slices.Sorted(maps.Keys(t.contents)) {
		c := t.contents[dest]
		switch {
		case c.Unit == "":
			entries = append(entries, fileEntries(c, waiting)...)
		case t.running[c.Unit] == nil:
			// What the unit runs is not known yet.
			for _, cr := range c.Creds[c.Latest] {
				waiting[siteOf(cr)] = true
			}
		}
	}
	for _, e := range entries {
		keys = append(keys, event.AgentKey{Unit: e.Unit, Mount: e.Site.Mount, Role: e.Site.Role, Site: e.Site.Site, AccessKey: e.AccessKey})
	}
	return keys, t.wants(entries, waiting), waiting
}

// unitEntries is what unit's process runs, site by site. complete is
// false when part of it is unknown; waits are then the sites it cannot
// tell, which must not be reported from the other units alone.
func (t *table) unitEntries(unit string) (entries []entry, complete bool, waits []Site) {
	files := t.running[unit]
	if len(files) == 0 {
		return t.lastKnown[unit], true, nil // not running: it keeps the key it had
	}
	complete = true
	for _, f := range files {
		c := t.contents[f.Destination]
		if c == nil {
			complete = false // not rendered yet: its sites are unknown
			continue
		}
		creds, known := c.Creds[f.Digest]
		if f.Digest == "" || !known {
			complete = false
			for _, cr := range c.Creds[c.Latest] {
				waits = append(waits, siteOf(cr))
			}
			continue
		}
		for _, cr := range creds {
			if cr.AccessKey == "" {
				complete = false
				waits = append(waits, siteOf(cr))
				continue
			}
			entries = append(entries, entry{Unit: unit, Site: siteOf(cr), AccessKey: cr.AccessKey, Since: f.Since})
		}
	}
	if !complete {
		for _, e := range append(slices.Clone(entries), t.lastKnown[unit]...) {
			waits = append(waits, e.Site)
		}
	}
	return entries, complete, waits
}

// remember records, for every running unit known in full, what it runs:
// the key it keeps while it is not running.
func (t *table) remember() {
	for unit, files := range t.running {
		if len(files) == 0 {
			continue
		}
		if entries, complete, _ := t.unitEntries(unit); complete {
			t.lastKnown[unit] = entries
		}
	}
}

// fileEntries is the key in the newest content of a file without a unit.
func fileEntries(c *content, waiting map[Site]bool) []entry {
	var out []entry
	for _, cr := range c.Creds[c.Latest] {
		if cr.AccessKey == "" {
			waiting[siteOf(cr)] = true
			continue
		}
		out = append(out, entry{Site: siteOf(cr), AccessKey: cr.AccessKey, Since: c.Written})
	}
	return out
}

// wants picks one report per site that is not waiting. When the units of
// a site run different keys, the report names one that is not the newest
// key hostd read for the site (the host is not done until every unit runs
// the newest), the one running it longest.
func (t *table) wants(entries []entry, waiting map[Site]bool) []Want {
	bySite := map[Site][]entry{}
	for _, e := range entries {
		if !waiting[e.Site] {
			bySite[e.Site] = append(bySite[e.Site], e)
		}
	}
	newest := t.newestKeys()
	var out []Want
	for site, es := range bySite {
		slices.SortFunc(es, func(a, b entry) int {
			aNew, bNew := a.AccessKey == newest[site], b.AccessKey == newest[site]
			switch {
			case aNew != bNew && !aNew:
				return -1
			case aNew != bNew:
				return 1
			}
			return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Unit, b.Unit))
		})
		e := es[0]
		w := Want{Site: site, AccessKey: e.AccessKey, Unit: e.Unit}
		if e.Unit != "" {
			w.AgentStarted = e.Since
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Want) int { return a.Site.compare(b.Site) })
	return out
}

// newestKeys is, per site, the key of the newest content of any file.
func (t *table) newestKeys() map[Site]string {
	out := map[Site]string{}
	for _, c := range t.contents {
		for _, cr := range c.Creds[c.Latest] {
			if cr.AccessKey != "" {
				out[siteOf(cr)] = cr.AccessKey
			}
		}
	}
	return out
}
