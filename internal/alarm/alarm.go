package alarm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/storage"
)

// ErrNoSpace is returned for writes while a NOSPACE alarm is active.
var ErrNoSpace = errors.New("alarm: database space exceeded")

// ErrCorrupt is returned for KV and lease requests while a CORRUPT alarm is
// active.
var ErrCorrupt = errors.New("alarm: corrupt cluster")

type key struct {
	member uint64
	typ    pb.AlarmType
}

// Store holds the active alarms.
type Store struct {
	mu     sync.RWMutex // guards alarms
	alarms map[key]bool
}

func alarmKey(k key) []byte {
	out := append([]byte(nil), storage.PrefixAlarm...)
	out = binary.BigEndian.AppendUint64(out, k.member)
	return binary.BigEndian.AppendUint32(out, uint32(k.typ))
}

// Load reads the alarms from r.
func Load(r storage.Reader) (*Store, error) {
	s := &Store{alarms: map[key]bool{}}
	it, err := r.NewIter(storage.IterOptions{LowerBound: storage.PrefixAlarm, UpperBound: storage.PrefixEnd(storage.PrefixAlarm)})
	if err != nil {
		return nil, fmt.Errorf("alarm: open iterator: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(storage.PrefixAlarm):]
		if len(k) != 12 {
			return nil, fmt.Errorf("alarm: malformed alarm key %q", it.Key())
		}
		s.alarms[key{binary.BigEndian.Uint64(k), pb.AlarmType(binary.BigEndian.Uint32(k[8:]))}] = true
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("alarm: scan: %w", err)
	}
	return s, nil
}

// Reload replaces the alarms with those r holds, after a Raft snapshot
// replaced the engine's contents.
func (s *Store) Reload(r storage.Reader) error {
	n, err := Load(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.alarms = n.alarms
	s.mu.Unlock()
	return nil
}

// Get returns the active alarms of type typ (NONE: all), ordered.
func (s *Store) Get(typ pb.AlarmType) []*pb.AlarmMember {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*pb.AlarmMember
	for k := range s.alarms {
		if typ == pb.AlarmType_NONE || k.typ == typ {
			out = append(out, &pb.AlarmMember{MemberID: k.member, Alarm: k.typ})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MemberID != out[j].MemberID {
			return out[i].MemberID < out[j].MemberID
		}
		return out[i].Alarm < out[j].Alarm
	})
	return out
}

// Active reports whether any alarm of type typ is raised.
func (s *Store) Active(typ pb.AlarmType) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k := range s.alarms {
		if k.typ == typ {
			return true
		}
	}
	return false
}

// Check returns the error a request gated by the alarms gets: CORRUPT for
// every KV and lease request, NOSPACE for writes that take space.
func (s *Store) Check(takesSpace bool) error {
	if s.Active(pb.AlarmType_CORRUPT) {
		return ErrCorrupt
	}
	if takesSpace && s.Active(pb.AlarmType_NOSPACE) {
		return ErrNoSpace
	}
	return nil
}

// Stage applies r into b and to the in-memory alarms at once, and returns
// the response. Like etcd, ACTIVATE answers with the alarm only when it was
// newly raised, DEACTIVATE with the alarm it cleared, GET with every active
// alarm. Memory changes at once, not after b commits: a member replaying
// the log applies an ACTIVATE, the writes it refuses and a DEACTIVATE in
// one batch, and must decide each of them as the members that applied them
// one batch each (a failed commit stops the member anyway). The returned
// effect is always nil.
func (s *Store) Stage(b storage.Batch, r *pb.AlarmRequest) (*pb.AlarmResponse, func(), error) {
	resp := &pb.AlarmResponse{}
	k := key{r.GetMemberID(), r.GetAlarm()}
	switch r.GetAction() {
	case pb.AlarmRequest_GET:
		resp.Alarms = s.Get(pb.AlarmType_NONE)
		return resp, nil, nil
	case pb.AlarmRequest_ACTIVATE:
		if k.typ == pb.AlarmType_NONE {
			return resp, nil, nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.alarms[k] {
			return resp, nil, nil
		}
		if err := b.Set(alarmKey(k), nil); err != nil {
			return nil, nil, fmt.Errorf("alarm: stage activate: %w", err)
		}
		s.alarms[k] = true
		resp.Alarms = []*pb.AlarmMember{{MemberID: k.member, Alarm: k.typ}}
		return resp, nil, nil
	case pb.AlarmRequest_DEACTIVATE:
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.alarms[k] {
			return resp, nil, nil
		}
		if err := b.Delete(alarmKey(k)); err != nil {
			return nil, nil, fmt.Errorf("alarm: stage deactivate: %w", err)
		}
		delete(s.alarms, k)
		resp.Alarms = []*pb.AlarmMember{{MemberID: k.member, Alarm: k.typ}}
		return resp, nil, nil
	}
	return nil, nil, fmt.Errorf("alarm: unknown action %v", r.GetAction())
}
