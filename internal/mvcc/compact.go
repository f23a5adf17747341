package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/failpoint"
	"github.com/metastore/metastore/internal/storage"
)

var errStopped = errors.New("mvcc: compactor stopped")

type compactJob struct {
	rev, prev int64
	done      chan struct{} // physical removal finished
	hashed    chan struct{} // hash of (prev, rev] recorded (or given up)
}

func newCompactJob(rev, prev int64) *compactJob {
	return &compactJob{rev: rev, prev: prev, done: make(chan struct{}), hashed: make(chan struct{})}
}

// compactor runs compactions one after another on its own goroutine.
type compactor struct {
	s       *Store
	mu      sync.Mutex // guards queue and pending
	queue   []*compactJob
	pending map[int64]*compactJob // queued or running, by revision
	wake    chan struct{}
	stopc   chan struct{}
	donec   chan struct{}
	once    sync.Once

	// yielder paces the compactor's reads (yield); it belongs to the
	// compactor's goroutine.
	yielder yielder
}

func newCompactor(s *Store) *compactor {
	c := &compactor{
		s:       s,
		pending: make(map[int64]*compactJob),
		wake:    make(chan struct{}, 1),
		stopc:   make(chan struct{}),
		donec:   make(chan struct{}),
		yielder: yielder{gosched: runtime.Gosched},
	}
	go c.run()
	return c
}

func (c *compactor) enqueue(j *compactJob) {
	c.mu.Lock()
	c.queue = append(c.queue, j)
	c.pending[j.rev] = j
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *compactor) stop() {
	c.once.Do(func() { close(c.stopc) })
	<-c.donec
}

// pendingJob returns the queued or running job compacting at rev, if any.
func (c *compactor) pendingJob(rev int64) *compactJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[rev]
}

func (c *compactor) run() {
	defer close(c.donec)
	for {
		c.mu.Lock()
		var j *compactJob
		if len(c.queue) > 0 {
			j = c.queue[0]
			c.queue = c.queue[1:]
		}
		c.mu.Unlock()
		if j == nil {
			select {
			case <-c.wake:
				continue
			case <-c.stopc:
				return
			}
		}
		err := c.compact(j)
		c.mu.Lock()
		delete(c.pending, j.rev)
		c.mu.Unlock()
		if errors.Is(err, errStopped) {
			return
		}
		if err != nil {
			// The scheduled revision stays persisted: the next Open retries.
			c.s.lg.Error("compaction failed", zap.Int64("compact-revision", j.rev), zap.Error(err))
			continue
		}
		close(j.done)
	}
}

// yieldVersions is how many versions a long scan (the compactor's, a
// hash's) reads between two yields of its processor (yielder).
const yieldVersions = 16

// yielder lets the goroutines queued behind a long scan run once it has
// read yieldVersions more versions. Go preempts a goroutine that runs on
// only after 10 ms; a compaction batch reads and hashes values for
// 20-30 ms, and the requests' goroutines made runnable on the compactor's
// processor meanwhile (a reply to send, the apply loop, Pebble's WAL
// writer) waited behind it up to that long, which is what a put's p99
// during a compaction showed (docs/adr/0021-compaction-pacing.md,
// amendment). Yielding moves the scan to the back of the run queue: it
// keeps its share of the CPU and gives up only the head of the line.
type yielder struct {
	n       int    // versions read since the last yield
	gosched func() // runtime.Gosched; a counter in tests
}

// add counts versions more read and yields once yieldVersions were; it
// reports whether it yielded.
func (y *yielder) add(versions int) bool {
	if y.n += versions; y.n < yieldVersions {
		return false
	}
	y.n = 0
	y.gosched()
	return true
}

func (c *compactor) stopped() bool {
	select {
	case <-c.stopc:
		return true
	default:
		return false
	}
}

// restPerWork is how many times as long as a batch worked the compactor
// rests after it: 6 leaves it about a seventh of a core. restPerWorkBehind
// is the same while a newer compaction waits behind the running one: the
// compactor is then not keeping up with the writes, and resting as long
// as it worked (half a core, ADR 21's first rule) lets it catch up rather
// than leave the history, and the disk it takes, growing.
const (
	restPerWork       = 6
	restPerWorkBehind = 1
)

// pauseFor is how long the compactor rests after a batch that kept it busy
// for worked: --compaction-sleep-interval, or restPerWork times as long as
// the batch worked if that is longer (restPerWorkBehind times when behind
// is set), so that a compaction takes at most about a seventh of a core
// from the requests it runs beside. etcd sleeps the interval alone; its
// batches read from a memory-mapped file, ours read values from blob files
// and hash them, and a batch of 1000 revisions took 20-30 ms on a shared
// 2-core machine: with a 10 ms rest the compactor held a core most of the
// time, and resting as long as it worked (half a core) or three times as
// long still raised the requests' p99 1.9x and 1.5x on 2 cores
// (docs/adr/0021-compaction-pacing.md). 0 keeps etcd's "no pause at all".
func pauseFor(interval, worked time.Duration, behind bool) time.Duration {
	if interval <= 0 {
		return 0
	}
	if behind {
		return max(interval, restPerWorkBehind*worked)
	}
	return max(interval, restPerWork*worked)
}

// behind reports whether a compaction is queued behind the running one:
// pending holds both until each is done.
func (c *compactor) behind() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 1
}

func (c *compactor) pause(worked time.Duration) error {
	d := pauseFor(c.s.opts.compactionSleep, worked, c.behind())
	if d <= 0 {
		if c.stopped() {
			return errStopped
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.stopc:
		return errStopped
	}
}

// valueRewriteDeferrer is implemented by engines whose background
// compactions may rewrite the values they keep (Pebble with blob files):
// while a compaction's deletions land, the engine leaves the values where
// they are, so that its compactions of the tombstones do not rewrite the
// live values of every table they reach beside the requests
// (docs/adr/0023-compaction-defers-value-rewrites.md).
type valueRewriteDeferrer interface {
	DeferValueRewrites() (release func())
}

func (c *compactor) compact(j *compactJob) error {
	s := c.s
	start := time.Now()
	if d, ok := s.eng.(valueRewriteDeferrer); ok {
		defer d.DeferValueRewrites()()
	}
	// HashKV at j.rev (etcd's hash at compaction) is computed by the removal
	// pass as it walks the versions, as etcd's compaction does, so it reads
	// each version once and is paced by the batches and pauses like the
	// removal. It used to be a separate unpaced pass before the removal:
	// reading every hashed value from the blob files was 17-44% of the
	// server's CPU while a compaction ran, beside the requests whose p99
	// it raised (docs/adr/0021-compaction-pacing.md). A HashKV waiting for
	// it (HashByRev) now waits for the scan to end.
	hashed := sync.OnceFunc(func() { close(j.hashed) })
	defer hashed()
	kh := newKVHasher(j.prev, j.rev)

	limit := s.opts.compactionBatchLimit
	b := s.eng.NewBatch()
	defer func() { _ = b.Close() }()
	inBatch, removed := 0, 0
	var pending int64 // logical bytes removed in the batch being built
	// rest pauses after a batch for as long as pauseFor says, measured
	// from the end of the previous pause.
	working := time.Now()
	rest := func() error {
		if err := c.pause(time.Since(working)); err != nil {
			return err
		}
		working = time.Now()
		return nil
	}
	flush := func() error {
		if err := b.Set(keyCompactedBytes, putInt64(s.compactedBytes.Load()+pending)); err != nil {
			return fmt.Errorf("mvcc: stage compacted bytes: %w", err)
		}
		failpoint.Inject(failpoint.CompactBeforeCommitBatch)
		if err := b.Commit(false); err != nil {
			return fmt.Errorf("mvcc: commit compaction batch: %w", err)
		}
		failpoint.Inject(failpoint.CompactAfterCommitBatch)
		s.compactedBytes.Add(pending)
		pending = 0
		_ = b.Close()
		b = s.eng.NewBatch()
		inBatch = 0
		return rest()
	}
	// The scan reads a snapshot taken now: every version <= j.rev is in it
	// (only this job removes such versions), and keys created while the job
	// runs are not, so the scan ends however fast new keys arrive. Over the
	// live engine, writers adding keys ahead of the scan kept it going forever
	// when they outpaced it (small --compaction-batch-limit, a pause each).
	snap := s.eng.NewSnapshot()
	defer func() { _ = snap.Close() }()
	pos := append([]byte(nil), prefixK...)
	hi := storage.PrefixEnd(prefixK)
	for {
		it, err := snap.NewIter(storage.IterOptions{LowerBound: pos, UpperBound: hi})
		if err != nil {
			return fmt.Errorf("mvcc: compaction iterator: %w", err)
		}
		visited := 0
		it.SeekGE(pos)
		for it.Valid() && visited < limit {
			group, dels, n, err := compactGroup(it, j.rev, kh)
			if err != nil {
				_ = it.Close()
				return err
			}
			visited += n
			c.yielder.add(n)
			pos = groupEnd(group)
			for _, d := range dels {
				if err := b.Delete(d.k); err != nil {
					_ = it.Close()
					return fmt.Errorf("mvcc: compaction delete: %w", err)
				}
				if err := b.Delete(d.h); err != nil {
					_ = it.Close()
					return fmt.Errorf("mvcc: compaction delete: %w", err)
				}
				pending += d.size
				inBatch++
				removed++
				if inBatch >= limit {
					if err := flush(); err != nil {
						_ = it.Close()
						return err
					}
				}
			}
		}
		finished := !it.Valid()
		ierr := it.Error()
		_ = it.Close()
		if ierr != nil {
			return fmt.Errorf("mvcc: compaction scan: %w", ierr)
		}
		if finished {
			break
		}
		if inBatch > 0 {
			if err := flush(); err != nil {
				return err
			}
		} else if err := rest(); err != nil {
			return err
		}
	}
	// Every version <= j.rev was in the snapshot and went through kh.
	s.recordHash(recordedHash{hash: kh.sum(), prev: j.prev, rev: j.rev})
	hashed()
	if err := b.Set(storage.KeyCompactRevision, putInt64(j.rev)); err != nil {
		return fmt.Errorf("mvcc: stage compact revision: %w", err)
	}
	if err := b.Set(keyCompactedBytes, putInt64(s.compactedBytes.Load()+pending)); err != nil {
		return fmt.Errorf("mvcc: stage compacted bytes: %w", err)
	}
	failpoint.Inject(failpoint.CompactBeforeSetFinishedCompact)
	if err := b.Commit(false); err != nil {
		return fmt.Errorf("mvcc: commit compaction: %w", err)
	}
	failpoint.Inject(failpoint.CompactAfterSetFinishedCompact)
	s.compactedBytes.Add(pending)
	s.lg.Info("finished scheduled compaction", zap.Int64("compact-revision", j.rev),
		zap.Int("revisions-removed", removed), zap.Duration("took", time.Since(start)))
	return nil
}

type delKeys struct {
	k, h []byte
	size int64 // what the version counted in the store's logical size
}

// compactGroup examines the versions of the key group under the iterator and
// leaves the iterator on the next group. It returns the keys to delete in a
// safe order: older versions first, the newest version <= rev (if it is a
// tombstone older than rev) last, so a concurrent reader at a revision >= rev
// never sees an older version resurface. n is the number of versions stepped.
// Every version <= rev goes through kh, in key order.
func compactGroup(it storage.Iterator, rev int64, kh *kvHasher) (group []byte, dels []delKeys, n int, err error) {
	g, main, _, err := splitVersionKey(it.Key())
	if err != nil {
		return nil, nil, 0, err
	}
	group = append([]byte(nil), g...)
	inGroup := func() bool {
		k := it.Key()
		return len(k) == len(group)+revSuffixLen && bytes.HasPrefix(k, group)
	}
	if main > rev {
		n++
		if !it.SeekGE(seekAtRev(group, rev)) || !inGroup() {
			return group, nil, n, it.Error()
		}
	}
	_, keptMain, keptSub, _ := splitVersionKey(it.Key())
	keptLen := recordLen(it)
	keptTomb := isTombstone(it)
	keptKey := append([]byte(nil), it.Key()...)
	kh.add(it, keptMain, true)
	n++
	for it.Next() && inGroup() {
		n++
		_, m, sb, _ := splitVersionKey(it.Key())
		kh.add(it, m, false)
		h := historyKey(m, sb)
		dels = append(dels, delKeys{k: append([]byte(nil), it.Key()...), h: h, size: versionSize(len(it.Key()), recordLen(it), len(h), len(group))})
	}
	if keptTomb && keptMain < rev {
		h := historyKey(keptMain, keptSub)
		dels = append(dels, delKeys{k: keptKey, h: h, size: versionSize(len(keptKey), keptLen, len(h), len(group))})
	}
	return group, dels, n, it.Error()
}

// recordLen is the length of the current record, without reading it when
// the engine can tell (valueLener): a compaction needs only the lengths of
// the versions it removes and, of the one it keeps, whether it is a
// tombstone. With values kept in Pebble blob files, reading them would
// fetch every removed version's value from disk (docs/benchmarks.md,
// Scale: the compaction's p99 at 8 GiB).
func recordLen(it storage.Iterator) int {
	if vl, ok := it.(valueLener); ok {
		if n := vl.ValueLen(); n >= 0 {
			return n
		}
	}
	return len(it.Value())
}
