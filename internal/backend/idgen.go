package backend

import (
	"sync/atomic"
	"time"
)

// idGen makes proposal IDs unique across members and restarts: the top 16
// bits are the member's, the rest start at the current time in ms shifted
// left by 8 and count up. Every member applies every entry, so an ID that
// another member could also use would wake the wrong waiter.
type idGen struct {
	prefix uint64
	next   atomic.Uint64
}

const suffixBits = 48

func newIDGen(memberID uint64, now time.Time) *idGen {
	g := &idGen{prefix: memberID << suffixBits}
	g.next.Store((uint64(now.UnixMilli()) << 8) & (1<<suffixBits - 1))
	return g
}

func (g *idGen) Next() uint64 {
	return g.prefix | (g.next.Add(1) & (1<<suffixBits - 1))
}
