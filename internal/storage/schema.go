package storage

import "encoding/binary"

// The key space. Every byte prefix used in the engine is declared here, so
// that no two packages can collide and an operator reading a dump can tell
// what each key is. Prefixes are one byte followed by '/', so a prefix scan
// of one part never strays into another.
//
//	r/e/<index:8 BE>                      raft log entry (raftlog)           value: CRC-framed raftpb.Entry
//	r/h                                   raft HardState (raftlog)           value: CRC-framed raftpb.HardState
//	r/s                                   raft log compaction point (raftlog) value: CRC-framed raftpb.SnapshotMetadata
//	r/c                                   raft ConfState as of the applied index (raftlog, written by apply) value: CRC-framed raftpb.ConfState
//	r/i                                   raft snapshot installation under way (raftsnap) value: CRC-framed raftpb.SnapshotMetadata
//	r/R                                   a restored data dir whose first Raft log is compacted once it serves (snapshot, server) value: empty
//	s/<key>                               a received raft snapshot being staged: the leader's <key> (raftsnap)
//	m/<name>                              server metadata (apply, mvcc, membership)
//	k/<escaped user key><^main:8><^sub:8> MVCC versions of a key, newest first (mvcc)
//	                                      key: user key with 0x00 escaped as 0x00 0xFF, ended by 0x00 0x01, so
//	                                      encoded keys sort like user keys; revisions inverted (^) so the newest is first
//	                                      value: flag byte (bit 0 = tombstone), uvarint create_revision, uvarint version,
//	                                      varint lease, raw value; mod_revision is the key's revision
//	h/<main:8><sub:8>                     MVCC revision history, oldest first (mvcc): flag byte, then the raw user key
//	m/mvcc_key_count                      8 BE live key count, written with every write batch (mvcc)
//	m/downgrade                           JSON downgrade state: enabled, target version (downgrade)
//	l/<lease id:8 BE>                     lease records (lease)
//	L/<lease id:8 BE><user key>           keys attached to a lease (lease)
//	a/enabled                             auth on or off, 1 byte (auth)
//	a/revision                            8 BE auth store revision (auth)
//	a/u/<name>                            authpb.User, bcrypt hash in Password (auth)
//	a/r/<name>                            authpb.Role, permissions sorted by key (auth)
//	c/<member id hex>                     cluster member, JSON (membership)
//	c/removed/<member id hex>             a removed member's ID, which may never come back (membership)
//	A/<member id:8 BE><alarm type:4 BE>   active alarms (alarm)
var (
	PrefixRaftEntry     = []byte("r/e/")
	KeyRaftHardState    = []byte("r/h")
	KeyRaftSnapshot     = []byte("r/s")
	KeyRaftConfState    = []byte("r/c")
	KeyRaftInstall      = []byte("r/i")
	KeyRestored         = []byte("r/R")
	PrefixRaft          = []byte("r/")
	PrefixSnapStaging   = []byte("s/")
	PrefixMeta          = []byte("m/")
	PrefixMVCCKey       = []byte("k/")
	PrefixMVCCHistory   = []byte("h/")
	PrefixLease         = []byte("l/")
	PrefixLeaseKeys     = []byte("L/")
	PrefixAuth          = []byte("a/")
	PrefixMembership    = []byte("c/")
	PrefixAlarm         = []byte("A/")
	KeyAppliedIndex     = MetaKey("applied_index")              // 8 BE applied raft index, then 8 BE its term
	KeyCurrentRevision  = MetaKey("current_revision")           // 8 BE main revision of the last applied write
	KeyCompactRevision  = MetaKey("compact_revision")           // 8 BE revision of the last finished compaction
	KeyScheduledCompact = MetaKey("scheduled_compact_revision") // 8 BE revision of a compaction requested but maybe unfinished
	KeyClusterID        = MetaKey("cluster_id")
	KeyMemberID         = MetaKey("member_id")
	KeyDowngrade        = MetaKey("downgrade")
)

// mvccSuffixLen is the length of the revision suffix of a k/ version key.
const mvccSuffixLen = 16

// MVCCPrefixLen returns the length of the part of engine key k that names
// one user key: for a k/ version key its group (k/, escaped user key,
// terminator) without the revision suffix, for every other key the whole
// key. Engines may keep per-prefix filters on it, so that looking up a user
// key that has no version costs no data read.
//
// Only keys of the k/ space are split, and only where the terminator
// 0x00 0x01 sits right before a 16-byte suffix: escaped user keys never hold
// 0x00 0x01, so groups are prefix-free and byte order of whole keys equals
// byte order of (prefix, suffix) pairs, which is what a Pebble comparer's
// Split must guarantee. Bounds and seek keys built by mvcc (escaped key
// without terminator, group with its last byte incremented) are not split.
func MVCCPrefixLen(k []byte) int {
	n := len(k) - mvccSuffixLen
	if n < len(PrefixMVCCKey)+2 || k[0] != PrefixMVCCKey[0] || k[1] != PrefixMVCCKey[1] || k[n-2] != 0x00 || k[n-1] != 0x01 {
		return len(k)
	}
	return n
}

// AppendMVCCPrefixSuccessor appends to dst the smallest prefix (in the sense
// of MVCCPrefixLen) greater than prefix p: for a k/ group (ending in the
// terminator 0x00 0x01) the group with its last byte raised, which sorts
// after every version of the group and before the next user key's group;
// for any other key p followed by 0x00.
func AppendMVCCPrefixSuccessor(dst, p []byte) []byte {
	n := len(p)
	if n >= len(PrefixMVCCKey)+2 && p[0] == PrefixMVCCKey[0] && p[1] == PrefixMVCCKey[1] && p[n-2] == 0x00 && p[n-1] == 0x01 {
		dst = append(dst, p...)
		dst[len(dst)-1] = 0x02
		return dst
	}
	return append(append(dst, p...), 0x00)
}

// MetaKey returns the engine key of a server metadata record.
func MetaKey(name string) []byte {
	return append(append([]byte(nil), PrefixMeta...), name...)
}

// RaftEntryKey returns the engine key of the raft log entry at index.
func RaftEntryKey(index uint64) []byte {
	return AppendRaftEntryKey(make([]byte, 0, len(PrefixRaftEntry)+8), index)
}

// AppendRaftEntryKey appends RaftEntryKey(index) to dst.
func AppendRaftEntryKey(dst []byte, index uint64) []byte {
	dst = append(dst, PrefixRaftEntry...)
	return binary.BigEndian.AppendUint64(dst, index)
}

// PrefixEnd returns the smallest key greater than every key that starts with
// prefix, for use as an exclusive upper bound. It returns nil (unbounded)
// when prefix is all 0xff.
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
