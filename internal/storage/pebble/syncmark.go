package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/metastore/metastore/internal/crc32c"
)

// ErrLostSyncedWrites is returned by Open when Pebble recovered less of its
// write-ahead log than had been synced before: acknowledged writes are gone.
var ErrLostSyncedWrites = errors.New("pebble: corrupted write-ahead log: synced writes were not recovered")

// syncMarkFile names the file, next to Pebble's own, that holds the
// sequence number reached by synced commits.
const syncMarkFile = "METASTORE-SYNCED-SEQNUM"

// syncMark records, outside Pebble's WAL, how far synced commits reached.
//
// Pebble cannot tell a corrupted record near the end of its newest WAL from
// a write torn by a crash: it replays up to the bad record and drops the
// rest without an error. A torn write can only hit commits that were never
// synced, hence never acknowledged. So after each synced commit returns,
// the sequence number it reached is written here (a 12-byte overwrite, no
// fsync: it only has to outlive the process, and after a machine crash an
// older value only weakens the check). At open, Pebble must have recovered
// at least that far; if not, records that had been synced were dropped,
// and Open refuses with ErrLostSyncedWrites instead of serving a state that
// lost acknowledged writes. The value is never ahead of what was synced,
// so a legitimately torn tail (unsynced) is always accepted.
type syncMark struct {
	mu   sync.Mutex // serialises writes; seq only grows
	f    vfs.File
	seq  uint64
	buf  [12]byte
	werr error // the first write error, logged once by the caller
}

// readSyncMark returns the recorded sequence number, 0 if there is none or
// it cannot be trusted (torn or damaged: its checksum does not match).
func readSyncMark(fs vfs.FS, dir string) (uint64, error) {
	b, err := readAll(fs, filepath.Join(dir, syncMarkFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pebble: read %s: %w", syncMarkFile, err)
	}
	if len(b) != 12 || crc32c.Checksum(b[:8]) != binary.BigEndian.Uint32(b[8:]) {
		return 0, nil
	}
	return binary.BigEndian.Uint64(b), nil
}

// checkSyncMark compares what db recovered with the recorded mark and opens
// the mark for the writes of this run.
func checkSyncMark(fs vfs.FS, dir string, db *pebble.DB) (*syncMark, error) {
	want, err := readSyncMark(fs, dir)
	if err != nil {
		return nil, err
	}
	got := visibleSeqNum(db)
	if got < want {
		return nil, fmt.Errorf("%w: %s recovered writes up to sequence number %d, but writes up to %d had been synced "+
			"(a damaged record at the end of the newest WAL is taken for a torn write and the log dropped from there); "+
			"refusing to start without them: restore this member from a backup or replace it (remove it and add it back with an empty data dir)",
			ErrLostSyncedWrites, dir, got, want)
	}
	f, err := fs.OpenReadWrite(filepath.Join(dir, syncMarkFile), vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("pebble: open %s: %w", syncMarkFile, err)
	}
	m := &syncMark{f: f}
	m.record(got)
	return m, m.werr
}

// visibleSeqNum is the sequence number the next write will get: one past
// everything recovered. Pebble exposes it only as the sequence number of a
// new snapshot, which its metrics report while the snapshot is open.
func visibleSeqNum(db *pebble.DB) uint64 {
	s := db.NewSnapshot()
	defer func() { _ = s.Close() }()
	return uint64(db.Metrics().Snapshots.EarliestSeqNum)
}

// committed records a synced commit of b (after Apply returned).
func (m *syncMark) committed(b *pebble.Batch) {
	if m == nil || b.Count() == 0 {
		return
	}
	m.record(uint64(b.SeqNum()) + uint64(b.Count()))
}

func (m *syncMark) record(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq <= m.seq || m.werr != nil {
		return
	}
	binary.BigEndian.PutUint64(m.buf[:8], seq)
	binary.BigEndian.PutUint32(m.buf[8:], crc32c.Checksum(m.buf[:8]))
	if _, err := m.f.WriteAt(m.buf[:], 0); err != nil {
		// Only the check at the next open is weakened; writes go on.
		m.werr = fmt.Errorf("pebble: write %s: %w", syncMarkFile, err)
		return
	}
	m.seq = seq
}

func (m *syncMark) close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.f.Close()
}
