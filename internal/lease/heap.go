package lease

import (
	"container/heap"
	"time"
)

// timeQueue is a min-heap of (lease, time) with at most one entry per lease,
// so rescheduling a lease moves its entry instead of piling up duplicates.
type timeQueue struct {
	items []*qItem
	index map[int64]*qItem
}

type qItem struct {
	id  int64
	at  time.Time
	pos int
}

func newTimeQueue() *timeQueue { return &timeQueue{index: map[int64]*qItem{}} }

func (q *timeQueue) Len() int           { return len(q.items) }
func (q *timeQueue) Less(i, j int) bool { return q.items[i].at.Before(q.items[j].at) }
func (q *timeQueue) Swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.items[i].pos, q.items[j].pos = i, j
}

// Push and Pop serve container/heap; use set, remove, peek and popMin.
func (q *timeQueue) Push(x any) {
	it := x.(*qItem)
	it.pos = len(q.items)
	q.items = append(q.items, it)
}

func (q *timeQueue) Pop() any {
	n := len(q.items)
	it := q.items[n-1]
	q.items[n-1] = nil
	q.items = q.items[:n-1]
	return it
}

// set schedules id at t, replacing an earlier schedule.
func (q *timeQueue) set(id int64, t time.Time) {
	if it, ok := q.index[id]; ok {
		it.at = t
		heap.Fix(q, it.pos)
		return
	}
	it := &qItem{id: id, at: t}
	q.index[id] = it
	heap.Push(q, it)
}

func (q *timeQueue) remove(id int64) {
	if it, ok := q.index[id]; ok {
		heap.Remove(q, it.pos)
		delete(q.index, id)
	}
}

func (q *timeQueue) peek() *qItem {
	if len(q.items) == 0 {
		return nil
	}
	return q.items[0]
}

func (q *timeQueue) popMin() *qItem {
	it := heap.Pop(q).(*qItem)
	delete(q.index, it.id)
	return it
}
