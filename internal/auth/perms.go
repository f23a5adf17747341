package auth

import (
	"bytes"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
)

// span is a half-open key interval [start, end); a nil end is unbounded.
type span struct {
	start, end []byte
}

// userPerms is a user's permissions merged over all its roles.
type userPerms struct {
	read, write []span
}

// permSpan converts a stored permission to its interval: an empty range end
// is the single key, "\0" means every key from Key on.
func permSpan(p *authpb.Permission) span {
	switch {
	case len(p.RangeEnd) == 0:
		return span{p.Key, append(append([]byte(nil), p.Key...), 0)}
	case isOpenEnded(p.RangeEnd):
		return span{p.Key, nil}
	default:
		return span{p.Key, p.RangeEnd}
	}
}

func isOpenEnded(rangeEnd []byte) bool { return len(rangeEnd) == 1 && rangeEnd[0] == 0 }

// validPermRange is etcd's rule for grantable ranges: a non-empty key, and a
// range end that is empty (one key), "\0" (open ended) or after the key.
func validPermRange(key, rangeEnd []byte) bool {
	if len(key) == 0 {
		return false
	}
	if len(rangeEnd) == 0 || isOpenEnded(rangeEnd) {
		return true
	}
	return bytes.Compare(key, rangeEnd) < 0
}

func mergePerms(u *authpb.User, roles map[string]*authpb.Role) *userPerms {
	up := &userPerms{}
	for _, rn := range u.Roles {
		r := roles[rn]
		if r == nil {
			continue
		}
		for _, p := range r.KeyPermission {
			sp := permSpan(p)
			switch p.PermType {
			case authpb.Permission_READ:
				up.read = append(up.read, sp)
			case authpb.Permission_WRITE:
				up.write = append(up.write, sp)
			case authpb.Permission_READWRITE:
				up.read = append(up.read, sp)
				up.write = append(up.write, sp)
			}
		}
	}
	sortSpans(up.read)
	sortSpans(up.write)
	return up
}

func sortSpans(s []span) {
	sort.Slice(s, func(i, j int) bool { return bytes.Compare(s[i].start, s[j].start) < 0 })
}

// endAfter reports whether end (nil: unbounded) lies after k.
func endAfter(end, k []byte) bool { return end == nil || bytes.Compare(end, k) > 0 }

// covers reports whether the union of spans (sorted by start) covers the
// request: a single key when rangeEnd is empty, every key from key on when
// rangeEnd is "\0", else [key, rangeEnd).
func covers(spans []span, key, rangeEnd []byte) bool {
	if len(rangeEnd) == 0 {
		for _, s := range spans {
			if bytes.Compare(s.start, key) <= 0 && endAfter(s.end, key) {
				return true
			}
		}
		return false
	}
	var want []byte // nil: unbounded
	if !isOpenEnded(rangeEnd) {
		want = rangeEnd
	}
	cur := key
	// Spans are sorted by start, so one pass extends the covered prefix as
	// far as it goes; a gap before any span's start ends it.
	for _, s := range spans {
		if bytes.Compare(s.start, cur) > 0 {
			break
		}
		if s.end == nil {
			return true
		}
		if bytes.Compare(s.end, cur) > 0 {
			cur = s.end
		}
		if want != nil && bytes.Compare(cur, want) >= 0 {
			return true
		}
	}
	return false
}
