package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/metastore/metastore/internal/storage"
)

// Defaults for Options fields left zero. The memtable is the largest fixed
// cost in resident memory under a write load (it fills before it flushes,
// and Raft entries and MVCC versions both pass through it), so it is kept
// at 16 MiB: metadata values are small, and flushing more often costs
// background I/O, not latency.
const (
	DefaultCacheSize    = 256 << 20
	DefaultMemTableSize = 16 << 20
)

// Options configure Open.
type Options struct {
	// NoSync disables every fsync (etcd's --unsafe-no-fsync). Commit(true)
	// still hands the batch to the operating system before returning, so
	// acknowledged writes survive a process crash but not a machine crash.
	NoSync bool
	// CacheSize is the block cache size in bytes; 0 means DefaultCacheSize.
	CacheSize int64
	// MemTableSize is the memtable size in bytes; 0 means
	// DefaultMemTableSize.
	MemTableSize uint64
	// WALDir puts Pebble's write-ahead log, the only file fsynced on the
	// write path, in its own directory (etcd's --wal-dir: a dedicated disk
	// for the log). Empty keeps it in the store's directory. Changing it
	// between runs is safe: the previous location is recorded in the store
	// and searched for logs at open.
	WALDir string
	// inlineWALZeroing zeroes new logs ahead of Pebble's writes in the
	// writing goroutine rather than in the background (zerowal.go): tests
	// that crash-clone a memory file system need the same files every run.
	inlineWALZeroing bool

	// FS is the file system (tests: vfs.NewCrashableMem, errorfs); nil
	// means the operating system's. Only the latter supports WALDir.
	FS vfs.FS
	// Logger receives Pebble's warnings and errors; nil keeps Pebble quiet
	// (except for fatal errors, which are always printed before exiting).
	Logger *zap.Logger

	// manualCompactionsOnly (tests): Pebble compacts only when asked, so
	// that a test sees what CompactAll itself reclaims.
	manualCompactionsOnly bool
}

// Engine is a storage.Engine backed by a Pebble database.
type Engine struct {
	dir string
	db  *pebble.DB
	// prefixFilters: the store was created with mvccComparer, so its
	// tables' bloom filters hold MVCC prefixes and SeekPrefixGE may use
	// them. Stores created before that keep the default comparer (Pebble
	// refuses to open a store with another comparer than the one it was
	// made with) and seek without filters.
	prefixFilters bool
	// mark records how far synced commits reached (nil with NoSync).
	mark *syncMark
	// valueSep is the store's value separation policy (valuesep.go).
	valueSep *valueSep

	// mu is held shared by every call into db and exclusively by Close, so
	// that no call reaches a closed pebble.DB (which panics).
	mu     sync.RWMutex
	closed bool
	// closeStarted is cancelled when Close starts, so that a CompactAll
	// (which holds mu shared for as long as it runs) gives up the
	// compactions not yet started and lets Close have mu.
	closeStarted  context.Context
	cancelOnClose context.CancelFunc

	// open tracks live iterators and snapshots so that Close can release
	// them first: Pebble refuses to close with leaked iterators, and their
	// later use must fail cleanly rather than touch freed memory.
	trackMu sync.Mutex
	closing bool
	iters   map[*iterator]struct{}
	snaps   map[*snapshot]struct{}
}

var _ storage.Engine = (*Engine)(nil)

// Open opens the Pebble store in dir, creating it if dir is absent or
// empty. A non-empty dir that does not hold a Pebble store is refused, so
// that a mistyped path never turns some other directory into a database.
func Open(dir string, opts Options) (_ *Engine, err error) {
	osFS := opts.FS == nil
	if osFS {
		opts.FS = vfs.Default
		if err := checkDir(dir); err != nil {
			return nil, err
		}
	} else if opts.WALDir != "" {
		return nil, fmt.Errorf("pebble: open %s: WALDir needs the operating system's file system", dir)
	}
	prefixFilters, err := wantsMVCCComparer(dir, opts.FS)
	if err != nil {
		return nil, err
	}
	cmp := pebble.DefaultComparer
	if prefixFilters {
		cmp = mvccComparer
	}
	vs := new(valueSep)
	po := pebbleOptions(opts, cmp, vs)
	if osFS {
		if err := setWALDirs(po, dir, opts.WALDir); err != nil {
			return nil, err
		}
	}
	// A corrupt store must yield an error, never take the caller down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble: open %s: %v", dir, r)
		}
	}()
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	if osFS {
		if err := recordWALDir(dir, opts.WALDir); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	var mark *syncMark
	if !opts.NoSync { // without fsync, a machine crash may lose synced writes: nothing to check
		if mark, err = checkSyncMark(opts.FS, dir, db); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	closeStarted, cancelOnClose := context.WithCancel(context.Background())
	return &Engine{
		closeStarted:  closeStarted,
		cancelOnClose: cancelOnClose,
		dir:           dir,
		db:            db,
		mark:          mark,
		prefixFilters: prefixFilters,
		valueSep:      vs,
		iters:         make(map[*iterator]struct{}),
		snaps:         make(map[*snapshot]struct{}),
	}, nil
}

// pebbleOptions returns the options for a store ordered by cmp; the
// comparer must be chosen first, as the defaults derive the table key
// schema from it.
func pebbleOptions(opts Options, cmp *pebble.Comparer, vs *valueSep) *pebble.Options {
	cacheSize := opts.CacheSize
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	memTable := opts.MemTableSize
	if memTable == 0 {
		memTable = DefaultMemTableSize
	}
	logger := pebbleLogger{l: opts.Logger}
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	if opts.NoSync {
		fs = noSyncFS{fs}
	} else {
		fs = zeroedWALFS{FS: fs, inline: opts.inlineWALZeroing}
	}
	compactions := min(runtime.GOMAXPROCS(0), 4)
	po := &pebble.Options{
		Comparer:           cmp,
		FS:                 fs,
		CacheSize:          cacheSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             logger,
		MemTableSize:       memTable,
		// Four memtables may queue behind a flush before writes stall: a
		// burst of Raft appends should not block on one slow flush. Eight
		// stalled a sustained load of large transactions less often
		// (BenchmarkLargeTxnLoad: once per 56 txns instead of 23, at the
		// same throughput) but Pebble keeps as many WAL files for reuse,
		// a memtable each, which a small store pays on disk.
		MemTableStopWritesThreshold: 4,
		// L0 is compacted into Lbase once it holds eight sublevels. Writes
		// land all over the key space, so every L0 compaction rewrites
		// most of Lbase: at two sublevels a sustained write load paid for
		// that four times as often, and Pebble's compactions took ~14 % of
		// the server's CPU for puts. Eight cut the bytes compactions write
		// per byte of small puts from 5.5 to 1.95 (BenchmarkSmallPutLoad)
		// and server CPU per txn-put from 0.84x etcd's to 0.59x
		// (bench/compare.sh, docs/benchmarks.md, session 8). Reads merge
		// more L0 tables: a page of 500 keys took ~7 % longer; point reads
		// pay little, as bloom filters rule out the tables without the
		// key. Stall only when compaction is hopelessly behind.
		L0CompactionThreshold: 8,
		L0StopWritesThreshold: 32,
		LBaseMaxBytes:         64 << 20,
		CompactionConcurrencyRange: func() (int, int) {
			return 1, compactions
		},
		EventListener:               eventListener(opts.Logger),
		DisableAutomaticCompactions: opts.manualCompactionsOnly,
	}
	// Tables are cut at a target size that counts the values they refer
	// to in blob files, and each flush output gets its own blob file: with
	// Pebble's 2 MB for L0 (doubled per level below) an 8 GiB store held
	// ~1,700 blob files and ~1,200 tables, more than the table cache's
	// 1,000 open files. 8 MB for L0 cuts both about fourfold.
	po.TargetFileSizes[0] = 8 << 20
	po.Experimental.ValueSeparationPolicy = vs.policy
	po.Experimental.SpanPolicyFunc = spanPolicy
	// Bloom filters on every level: most point reads (raft entries, meta
	// keys, lease records) hit exactly one key.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	po.EnsureDefaults()
	return po
}

// mvccComparer orders keys bytewise, like Pebble's default comparer, and
// splits k/ version keys into their user key group and revision suffix
// (storage.MVCCPrefixLen), so that bloom filters are built on groups and a
// put or a point read of a key without versions skips every table whose
// filter rules the key out, instead of reading a data block per level.
//
// Keys Pebble derives from ours must obey the same split, so the default's
// key-shortening Separator and Successor (which could cut a version key
// inside its suffix, leaving a "prefix" that sorts after the key's own
// versions) are replaced by the identity, which the Comparer contract
// allows, and ImmediateSuccessor of a group skips past all its versions.
var mvccComparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Split = storage.MVCCPrefixLen
	c.Separator = func(dst, a, _ []byte) []byte { return append(dst, a...) }
	c.Successor = func(dst, a []byte) []byte { return append(dst, a...) }
	c.ImmediateSuccessor = storage.AppendMVCCPrefixSuccessor
	c.Name = "metastore.bytewise.mvcc-prefix.v1"
	return &c
}()

// wantsMVCCComparer reports whether the store in dir uses (or, if new,
// will use) mvccComparer: a store made with the default comparer keeps it.
func wantsMVCCComparer(dir string, fs vfs.FS) (bool, error) {
	desc, err := pebble.Peek(dir, fs)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("pebble: open %s: inspect store: %w", dir, err)
	}
	if !desc.Exists {
		return true, nil
	}
	if desc.OptionsFilename == "" {
		return false, nil
	}
	b, err := readAll(fs, desc.OptionsFilename)
	if err != nil {
		return false, fmt.Errorf("pebble: open %s: read options: %w", dir, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "comparer="); ok {
			return v == mvccComparer.Name, nil
		}
	}
	return false, nil
}

func eventListener(l *zap.Logger) *pebble.EventListener {
	if l == nil {
		return &pebble.EventListener{
			BackgroundError: func(error) {},
		}
	}
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			l.Error("pebble background error", zap.Error(err))
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			l.Warn("pebble: slow disk", zap.String("info", info.String()))
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			l.Warn("pebble: write stall", zap.String("reason", info.Reason))
		},
		WriteStallEnd: func() {
			l.Info("pebble: write stall ended")
		},
	}
}

// checkDir refuses paths that are not directories and non-empty directories
// that do not look like a Pebble store.
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("pebble: open %s: not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pebble: open %s: %w", dir, err)
	}
	var foreign string
	for _, e := range entries {
		name := e.Name()
		if name == "CURRENT" || strings.HasPrefix(name, "marker.manifest.") {
			return nil // a store; Pebble itself judges whether it is intact
		}
		if foreign == "" && !pebbleFileName(name) {
			foreign = name
		}
	}
	if foreign != "" {
		return fmt.Errorf("pebble: open %s: not a pebble store (directory holds %q but no MANIFEST marker)", dir, foreign)
	}
	// Empty, or left behind by a creation that was interrupted before the
	// manifest marker was written: let Pebble (re)create the store.
	return nil
}

func pebbleFileName(name string) bool {
	switch {
	case name == "LOCK", name == walDirFile, name == walDirFile+".tmp", name == syncMarkFile,
		strings.HasPrefix(name, "OPTIONS-"),
		strings.HasPrefix(name, "MANIFEST-"),
		strings.HasPrefix(name, "marker."),
		strings.HasSuffix(name, ".log"),
		strings.HasSuffix(name, ".sst"),
		strings.HasSuffix(name, ".blob"),
		strings.HasSuffix(name, ".dbtmp"):
		return true
	}
	return false
}

// Dir returns the directory the engine was opened on.
func (e *Engine) Dir() string { return e.dir }

// Get implements storage.Reader.
func (e *Engine) Get(key []byte) ([]byte, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, storage.ErrClosed
	}
	return get(e.db, key)
}

type pebbleGetter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func get(r pebbleGetter, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pebble: get: %w", err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("pebble: get: %w", err)
	}
	return out, nil
}

// NewIter implements storage.Reader.
func (e *Engine) NewIter(opts storage.IterOptions) (storage.Iterator, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, storage.ErrClosed
	}
	return e.newIter(e.db, opts)
}

type pebbleIterMaker interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func (e *Engine) newIter(r pebbleIterMaker, opts storage.IterOptions) (storage.Iterator, error) {
	// Pebble keeps the bound slices; the caller may reuse theirs.
	po := &pebble.IterOptions{
		LowerBound: cloneBytes(opts.LowerBound),
		UpperBound: cloneBytes(opts.UpperBound),
		// Only SeekPrefixGE consults filters, and ours are mostly for keys
		// that do not exist yet (every put of a new key looks up its latest
		// version). Pebble skips the bottom level's filters by default, and
		// that level holds most of the data: without them each such lookup
		// read a data block (~10% of a put's CPU at 1000 clients).
		UseL6Filters: true,
	}
	// An empty lower bound bounds nothing. Dropping it matters beyond
	// thrift: Pebble's race and invariants builds index key[0] when seeking
	// to an empty key, and First seeks to the lower bound.
	if len(po.LowerBound) == 0 {
		po.LowerBound = nil
	}
	// An empty upper bound or an inverted range holds no key. Pebble
	// asserts lower <= upper, so such ranges never reach it.
	empty := po.UpperBound != nil &&
		(len(po.UpperBound) == 0 || (po.LowerBound != nil && bytes.Compare(po.LowerBound, po.UpperBound) >= 0))
	if empty {
		po.LowerBound, po.UpperBound = nil, []byte{0}
	}
	pi, err := r.NewIter(po)
	if err != nil {
		return nil, fmt.Errorf("pebble: new iterator: %w", err)
	}
	it := &iterator{e: e, it: pi, empty: empty}
	e.trackMu.Lock()
	if e.closing {
		e.trackMu.Unlock()
		_ = pi.Close()
		return nil, storage.ErrClosed
	}
	e.iters[it] = struct{}{}
	e.trackMu.Unlock()
	return it, nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// NewBatch implements storage.Engine.
func (e *Engine) NewBatch() storage.Batch {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return &batch{e: e, err: storage.ErrClosed}
	}
	return &batch{e: e, b: e.db.NewBatch()}
}

// NewSnapshot implements storage.Engine. On a closed engine it returns a
// snapshot whose every operation fails with storage.ErrClosed.
func (e *Engine) NewSnapshot() storage.Snapshot {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return &snapshot{e: e, closed: true}
	}
	s := &snapshot{e: e, s: e.db.NewSnapshot()}
	e.trackMu.Lock()
	e.snaps[s] = struct{}{}
	e.trackMu.Unlock()
	return s
}

// Checkpoint implements storage.Engine using Pebble's checkpoint, which
// hard-links the immutable table files and copies the WAL and manifest.
func (e *Engine) Checkpoint(dir string) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return storage.ErrClosed
	}
	if err := e.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("pebble: checkpoint %s into %s: %w", e.dir, dir, err)
	}
	return nil
}

// Sync implements storage.Engine: an empty synced write forces the WAL, and
// with it every earlier commit, to stable storage.
func (e *Engine) Sync() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return storage.ErrClosed
	}
	if err := e.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("pebble: sync: %w", err)
	}
	return nil
}

// CompactAll implements storage.Engine with a manual compaction of every
// level over the bounds of all the store's tables (split into parallel
// compactions where Pebble can). The memtable is flushed first so that its
// keys are among the tables compacted, and the values kept are rewritten
// into new blob files so that the files holding deleted values go too.
// Pebble compacts in the background as it does on its own, so reads and
// writes are served meanwhile. The compacted tables' and blob files are
// deleted by Pebble shortly after it returns.
func (e *Engine) CompactAll(ctx context.Context) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return storage.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.closeStarted, cancel)()
	e.valueSep.rewriting.Add(1)
	defer e.valueSep.rewriting.Add(-1)
	if err := e.db.Flush(); err != nil {
		return fmt.Errorf("pebble: compact %s: flush: %w", e.dir, err)
	}
	lo, hi, err := e.tableBounds()
	if err != nil || lo == nil {
		return err
	}
	if bytes.Compare(lo, hi) >= 0 {
		// One key: Pebble wants start < end, and end is inclusive.
		hi = append(hi, 0)
	}
	if err := e.db.Compact(ctx, lo, hi, true); err != nil {
		return fmt.Errorf("pebble: compact %s: %w", e.dir, err)
	}
	return nil
}

// tableBounds returns the smallest and the largest user key of any table
// (copies), or nils when there is none. The bounds come from the tables,
// not from an iterator, so that tables holding only deleted keys, which an
// iterator does not see, are compacted too.
func (e *Engine) tableBounds() (lo, hi []byte, err error) {
	levels, err := e.db.SSTables()
	if err != nil {
		return nil, nil, fmt.Errorf("pebble: compact %s: list tables: %w", e.dir, err)
	}
	for _, level := range levels {
		for _, t := range level {
			if s := t.Smallest.UserKey; lo == nil || bytes.Compare(s, lo) < 0 {
				lo = bytes.Clone(s)
			}
			if l := t.Largest.UserKey; hi == nil || bytes.Compare(l, hi) > 0 {
				hi = bytes.Clone(l)
			}
		}
	}
	return lo, hi, nil
}

// Usage implements storage.Engine. SizeBytes is Pebble's disk space usage,
// counting the WAL at its written size (Pebble reports the current WAL's
// size as of its creation). LiveBytes counts the live tables plus the WAL
// bytes not yet flushed to a table; obsolete and zombie files awaiting
// deletion are left out, and so is the share of blob files' values that no
// table refers to any more. Overwritten versions inside live tables are
// still counted: Pebble cannot tell those apart without a compaction.
func (e *Engine) Usage() storage.Usage {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return storage.Usage{}
	}
	m := e.db.Metrics()
	// Pebble v2.1.7 does not count the blob files a store already had when
	// it was opened in BlobFiles.Local.LiveSize (it only adds and subtracts
	// the files made and deleted since, so the figure may even wrap below
	// zero), which DiskSpaceUsage sums; BlobFiles.LiveSize is computed from
	// the current version and is right. All our files are local. uint64
	// arithmetic wraps, so the swap is exact either way
	// (TestUsageCountsBlobFilesAfterReopen).
	size := m.DiskSpaceUsage() - m.BlobFiles.Local.LiveSize + m.BlobFiles.LiveSize
	if m.WAL.Size > m.WAL.PhysicalSize {
		size += m.WAL.Size - m.WAL.PhysicalSize
	}
	// A blob file stays whole while any of its values is referenced; count
	// only the referenced share, which a CompactAll would keep.
	blobs := m.BlobFiles.LiveSize
	if all, ref := m.BlobFiles.ValueSize, m.BlobFiles.ReferencedValueSize; all > 0 && ref < all {
		blobs = uint64(float64(blobs) * float64(ref) / float64(all))
	}
	live := m.Table.Local.LiveSize + blobs + m.WAL.Size
	if live > size {
		live = size
	}
	return storage.Usage{SizeBytes: int64(size), LiveBytes: int64(live)}
}

// Close implements storage.Engine. Iterators and snapshots still open are
// closed first; their later use fails with storage.ErrClosed. A second Close
// returns storage.ErrClosed.
func (e *Engine) Close() error {
	e.cancelOnClose()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return storage.ErrClosed
	}
	e.closed = true

	e.trackMu.Lock()
	e.closing = true
	iters, snaps := e.iters, e.snaps
	e.iters, e.snaps = nil, nil
	e.trackMu.Unlock()

	var errs []error
	for it := range iters {
		errs = append(errs, it.release())
	}
	for s := range snaps {
		errs = append(errs, s.release())
	}
	// A clean stop leaves everything in checksummed tables: a WAL whose
	// tail is damaged later cannot silently drop acknowledged writes that
	// Pebble would otherwise replay from it (it treats a bad last record as
	// a torn write).
	if err := e.db.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("flush: %w", err))
	}
	if err := e.db.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := e.mark.close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pebble: close %s: %w", e.dir, err)
	}
	return nil
}

func (e *Engine) untrackIter(it *iterator) {
	e.trackMu.Lock()
	delete(e.iters, it)
	e.trackMu.Unlock()
}

func (e *Engine) untrackSnap(s *snapshot) {
	e.trackMu.Lock()
	delete(e.snaps, s)
	e.trackMu.Unlock()
}

// readAll reads the file name of fs.
func readAll(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return io.ReadAll(f)
}
