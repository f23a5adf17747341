package apply

// entrySizes holds the sizes of the entries applied after index base, in
// index order, so that the Raft log can be cut by bytes
// (Config.CatchupBytes), and the bytes applied since the last cut. Only the
// apply goroutine uses it. Its length is bounded by the entries the log
// keeps: a cut trims it.
type entrySizes struct {
	base  uint64 // sizes[i] is the size of entry base+1+i
	sizes []uint64
	// unknown: the log may hold entries up to base whose sizes are not
	// known (after a restart, until a cut removes them).
	unknown  bool
	sinceCut uint64 // bytes applied since the last cut
}

// reset starts over after index base: unknown says whether the log may
// still hold entries up to base (a restart) or not (a snapshot installed).
func (s *entrySizes) reset(base uint64, unknown bool) {
	s.base, s.sizes, s.unknown, s.sinceCut = base, s.sizes[:0], unknown, 0
}

// add records entry index of n bytes. Entries come in index order (a
// snapshot installed resets first); after a gap it starts over, not
// knowing what came before.
func (s *entrySizes) add(index, n uint64) {
	if index != s.base+uint64(len(s.sizes))+1 {
		s.base, s.sizes, s.unknown = index-1, s.sizes[:0], true
	}
	s.sizes = append(s.sizes, n)
	s.sinceCut += n
}

// keep returns how many of the newest entries up to applied a cut keeps:
// as many as fit in budget bytes, at least one and at most maxKeep. When
// every known entry fits and older ones are unknown, it keeps maxKeep, as
// the count alone would.
func (s *entrySizes) keep(applied, maxKeep, budget uint64) uint64 {
	n := uint64(len(s.sizes))
	if last := s.base + n; last != applied || n == 0 {
		return maxKeep // sizes not tracked up to applied
	}
	var kept, total uint64
	for i := n; i > 0 && kept < maxKeep; i-- {
		total += s.sizes[i-1]
		if total > budget && kept > 0 {
			return kept
		}
		kept++
	}
	if kept == n && s.unknown {
		return maxKeep // the budget reaches below what is known
	}
	return kept
}

// trim forgets the entries up to index, which a cut removed from the log.
func (s *entrySizes) trim(index uint64) {
	if index < s.base {
		return
	}
	s.unknown = false
	k := index - s.base
	if k > uint64(len(s.sizes)) {
		k = uint64(len(s.sizes))
	}
	s.sizes = append(s.sizes[:0], s.sizes[k:]...)
	s.base += k
}
