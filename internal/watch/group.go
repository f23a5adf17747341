package watch

import (
	"bytes"
	"sort"
)

// group indexes watchers by what they watch so that finding the watchers of
// one key costs a map lookup plus a search over the distinct ranges, not a scan
// of every watcher.
type group struct {
	all    map[*watcher]struct{}
	keys   map[string]map[*watcher]struct{}
	ranges map[rangeID]*rangeEntry

	// sorted and maxEnd are rebuilt lazily after ranges changed: entries by
	// start key, and for each index the largest end among entries [0, i], so a
	// stabbing query can stop walking left as soon as nothing can reach the key.
	sorted []*rangeEntry
	maxEnd []rangeEnd
	dirty  bool
}

type rangeID struct {
	key, end string
	fromKey  bool
}

type rangeEnd struct {
	end string
	inf bool
}

func (e rangeEnd) after(k []byte) bool { return e.inf || e.end > string(k) }

type rangeEntry struct {
	id       rangeID
	watchers map[*watcher]struct{}
}

func newGroup() *group {
	return &group{
		all:    make(map[*watcher]struct{}),
		keys:   make(map[string]map[*watcher]struct{}),
		ranges: make(map[rangeID]*rangeEntry),
	}
}

func (g *group) size() int { return len(g.all) }

func (g *group) add(w *watcher) {
	if _, ok := g.all[w]; ok {
		return
	}
	g.all[w] = struct{}{}
	if w.single() {
		set := g.keys[string(w.key)]
		if set == nil {
			set = make(map[*watcher]struct{})
			g.keys[string(w.key)] = set
		}
		set[w] = struct{}{}
		return
	}
	id := w.rangeID()
	e := g.ranges[id]
	if e == nil {
		e = &rangeEntry{id: id, watchers: make(map[*watcher]struct{})}
		g.ranges[id] = e
		g.dirty = true
	}
	e.watchers[w] = struct{}{}
}

func (g *group) delete(w *watcher) bool {
	if _, ok := g.all[w]; !ok {
		return false
	}
	delete(g.all, w)
	if w.single() {
		set := g.keys[string(w.key)]
		delete(set, w)
		if len(set) == 0 {
			delete(g.keys, string(w.key))
		}
		return true
	}
	id := w.rangeID()
	if e := g.ranges[id]; e != nil {
		delete(e.watchers, w)
		if len(e.watchers) == 0 {
			delete(g.ranges, id)
			g.dirty = true
		}
	}
	return true
}

func (g *group) rebuild() {
	g.sorted = g.sorted[:0]
	for _, e := range g.ranges {
		g.sorted = append(g.sorted, e)
	}
	sort.Slice(g.sorted, func(i, j int) bool { return g.sorted[i].id.key < g.sorted[j].id.key })
	g.maxEnd = g.maxEnd[:0]
	var cur rangeEnd
	for i, e := range g.sorted {
		end := rangeEnd{end: e.id.end, inf: e.id.fromKey}
		if i == 0 || end.inf || (!cur.inf && end.end > cur.end) {
			cur = end
		}
		g.maxEnd = append(g.maxEnd, cur)
	}
	g.dirty = false
}

// stab calls fn for every watcher whose key or range contains k. A watcher is
// visited once: a watcher is either a single-key or a range watcher.
func (g *group) stab(k []byte, fn func(w *watcher)) {
	for w := range g.keys[string(k)] {
		fn(w)
	}
	if len(g.ranges) == 0 {
		return
	}
	if g.dirty {
		g.rebuild()
	}
	n := sort.Search(len(g.sorted), func(i int) bool { return g.sorted[i].id.key > string(k) })
	for i := n - 1; i >= 0; i-- {
		if !g.maxEnd[i].after(k) {
			break
		}
		e := g.sorted[i]
		if e.id.fromKey || e.id.end > string(k) {
			for w := range e.watchers {
				fn(w)
			}
		}
	}
}

// contains reports whether user key k is in [key, end) as a watcher sees it.
func contains(key, end []byte, fromKey bool, k []byte) bool {
	if end == nil && !fromKey {
		return bytes.Equal(k, key)
	}
	if bytes.Compare(k, key) < 0 {
		return false
	}
	return fromKey || bytes.Compare(k, end) < 0
}
