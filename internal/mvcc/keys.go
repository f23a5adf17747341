package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// revSuffixLen is the length of the inverted (main, sub) revision suffix.
const revSuffixLen = 16

// termLen is the length of the user-key terminator.
const termLen = 2

var (
	prefixK = storage.PrefixMVCCKey
	prefixH = storage.PrefixMVCCHistory
	// keyKeyCount persists the number of live keys so KeyCount is cheap
	// without a scan at start-up.
	keyKeyCount = storage.MetaKey("mvcc_key_count")
	// keyWrittenBytes and keyCompactedBytes give the logical size of the
	// MVCC data (written minus compacted) without a scan. Each has one
	// writer (the apply Writer, the compactor) so neither overwrites the
	// other's count.
	keyWrittenBytes   = storage.MetaKey("mvcc_bytes_written")
	keyCompactedBytes = storage.MetaKey("mvcc_bytes_compacted")
)

// appendEscaped appends the escaped form of user key u: 0x00 becomes 0x00 0xFF,
// so that 0x00 0x01 (the terminator) never appears inside an escaped key and
// the escaped forms sort like the user keys.
func appendEscaped(dst, u []byte) []byte {
	for _, c := range u {
		if c == 0 {
			dst = append(dst, 0x00, 0xFF)
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

// unescape decodes an escaped user key (without terminator).
func unescape(e []byte) ([]byte, error) {
	out := make([]byte, 0, len(e))
	for i := 0; i < len(e); i++ {
		c := e[i]
		if c == 0 {
			if i+1 >= len(e) || e[i+1] != 0xFF {
				return nil, errors.New("mvcc: bad escape in key")
			}
			i++
		}
		out = append(out, c)
	}
	return out, nil
}

// prefixKEnd bounds the k/ space from above.
var prefixKEnd = storage.PrefixEnd(prefixK)

// keyGroup returns k/ + escaped(u) + terminator: the common prefix of every
// version of u.
func keyGroup(u []byte) []byte {
	return appendGroup(make([]byte, 0, len(prefixK)+len(u)+termLen+revSuffixLen), u)
}

// appendGroup appends keyGroup(u) to dst.
func appendGroup(dst, u []byte) []byte {
	dst = append(dst, prefixK...)
	dst = appendEscaped(dst, u)
	return append(dst, 0x00, 0x01)
}

// groupEnd returns the smallest encoded key after every version of the group
// g (as returned by keyGroup).
func groupEnd(g []byte) []byte { return appendGroupEnd(nil, g) }

// appendGroupEnd appends groupEnd(g) to dst.
func appendGroupEnd(dst, g []byte) []byte {
	dst = append(dst, g...)
	dst[len(dst)-1]++ // 0x00 0x01 -> 0x00 0x02
	return dst
}

func appendRev(dst []byte, main, sub int64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, ^uint64(main))
	return binary.BigEndian.AppendUint64(dst, ^uint64(sub))
}

// versionKey is the engine key of version (main, sub) of group g.
func versionKey(g []byte, main, sub int64) []byte {
	k := make([]byte, 0, len(g)+revSuffixLen)
	k = append(k, g...)
	return appendRev(k, main, sub)
}

// seekAtRev is the engine key of the first (newest) version of group g whose
// main revision is <= rev.
func seekAtRev(g []byte, rev int64) []byte {
	return appendSeekAtRev(make([]byte, 0, len(g)+revSuffixLen), g, rev)
}

// appendSeekAtRev appends seekAtRev(g, rev) to dst.
func appendSeekAtRev(dst, g []byte, rev int64) []byte {
	dst = append(dst, g...)
	dst = binary.BigEndian.AppendUint64(dst, ^uint64(rev))
	return append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
}

// splitVersionKey splits an engine key from the k/ space into its group
// (prefix, escaped key, terminator) and revision.
func splitVersionKey(k []byte) (group []byte, main, sub int64, err error) {
	n := len(k) - revSuffixLen
	if n < len(prefixK)+termLen || k[n-2] != 0x00 || k[n-1] != 0x01 {
		return nil, 0, 0, fmt.Errorf("mvcc: malformed version key %q", k)
	}
	main = int64(^binary.BigEndian.Uint64(k[n:]))
	sub = int64(^binary.BigEndian.Uint64(k[n+8:]))
	return k[:n], main, sub, nil
}

// groupUserKey decodes the user key of a group.
func groupUserKey(g []byte) ([]byte, error) {
	return unescape(g[len(prefixK) : len(g)-termLen])
}

// rangeBounds converts a user-key range into engine bounds in the k/ space.
// end == nil or empty: the single key; end == {0}: every key >= key;
// otherwise [key, end). ok is false when the range is empty.
func rangeBounds(key, end []byte) (lo, hi []byte, single bool, ok bool) {
	if len(end) == 0 {
		g := keyGroup(key)
		return g, groupEnd(g), true, true
	}
	lo = append(append([]byte(nil), prefixK...), appendEscaped(nil, key)...)
	if len(end) == 1 && end[0] == 0 {
		return lo, storage.PrefixEnd(prefixK), false, true
	}
	hi = append(append([]byte(nil), prefixK...), appendEscaped(nil, end)...)
	if string(lo) >= string(hi) {
		return nil, nil, false, false
	}
	return lo, hi, false, true
}

// inRange reports whether user key u is in the user-key range (key, end) as
// rangeBounds interprets it.
func inRange(u, key, end []byte) bool {
	if len(end) == 0 {
		return string(u) == string(key)
	}
	if string(u) < string(key) {
		return false
	}
	if len(end) == 1 && end[0] == 0 {
		return true
	}
	return string(u) < string(end)
}

// historyKey is the h/ key of revision (main, sub).
func historyKey(main, sub int64) []byte {
	return appendHistoryKey(make([]byte, 0, len(prefixH)+16), main, sub)
}

// appendHistoryKey appends historyKey(main, sub) to dst.
func appendHistoryKey(dst []byte, main, sub int64) []byte {
	dst = append(dst, prefixH...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(main))
	return binary.BigEndian.AppendUint64(dst, uint64(sub))
}

func splitHistoryKey(k []byte) (main, sub int64, err error) {
	if len(k) != len(prefixH)+16 {
		return 0, 0, fmt.Errorf("mvcc: malformed history key %q", k)
	}
	b := k[len(prefixH):]
	return int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:])), nil
}

// version is one decoded version record of a key.
type version struct {
	main, sub int64
	tomb      bool
	create    int64
	ver       int64
	lease     int64
	value     []byte
}

const (
	flagTombstone = 1 << 0
)

// appendRecord appends the value stored at a version key. The layout is a
// flag byte, then for live versions uvarint create_revision, uvarint version,
// varint lease and the raw value up to the end.
func appendRecord(dst []byte, v *version) []byte {
	if v.tomb {
		return append(dst, flagTombstone)
	}
	dst = append(dst, 0)
	dst = binary.AppendUvarint(dst, uint64(v.create))
	dst = binary.AppendUvarint(dst, uint64(v.ver))
	dst = binary.AppendVarint(dst, v.lease)
	return append(dst, v.value...)
}

// decodeRecord decodes a record; the value is copied when copyValue is set
// (engine buffers are only valid until the iterator moves) and left out when
// withValue is false.
func decodeRecord(b []byte, main, sub int64, withValue bool) (version, error) {
	v := version{main: main, sub: sub}
	if len(b) < 1 {
		return v, errors.New("mvcc: empty version record")
	}
	if b[0]&flagTombstone != 0 {
		v.tomb = true
		return v, nil
	}
	p := b[1:]
	c, n := binary.Uvarint(p)
	if n <= 0 {
		return v, errors.New("mvcc: bad create revision")
	}
	p = p[n:]
	ver, n := binary.Uvarint(p)
	if n <= 0 {
		return v, errors.New("mvcc: bad version")
	}
	p = p[n:]
	l, n := binary.Varint(p)
	if n <= 0 {
		return v, errors.New("mvcc: bad lease")
	}
	p = p[n:]
	v.create, v.ver, v.lease = int64(c), int64(ver), l
	if withValue {
		v.value = append([]byte{}, p...)
	}
	return v, nil
}

// appendHistory appends the value of an h/ entry: a flag byte then the user
// key.
func appendHistory(dst, u []byte, tomb bool) []byte {
	if tomb {
		dst = append(dst, flagTombstone)
	} else {
		dst = append(dst, 0)
	}
	return append(dst, u...)
}

func decodeHistory(b []byte) (u []byte, tomb bool, err error) {
	if len(b) < 1 {
		return nil, false, errors.New("mvcc: empty history record")
	}
	return b[1:], b[0]&flagTombstone != 0, nil
}

func putInt64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func readInt64(r storage.Reader, key []byte) (int64, bool, error) {
	b, err := r.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("mvcc: read %q: %w", key, err)
	}
	if len(b) < 8 {
		return 0, false, fmt.Errorf("mvcc: meta %q is %d bytes", key, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), true, nil
}

// versionSize is what one version counts in the store's logical size: its
// version record and its history record, keys and values.
func versionSize(kKey, kVal, hKey, group int) int64 {
	return int64(kKey + kVal + hKey + 1 + group)
}
