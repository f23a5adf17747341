package robustness

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/tests/v3/robustness/model"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/raftlog"
	pebbleengine "github.com/metastore/metastore/internal/storage/pebble"
)

// memberLog is what one stopped member persisted.
type memberLog struct {
	dir     string
	commit  uint64
	entries []*raftpb.Entry
}

// readMemberLog reads the Raft log of the stopped member whose data dir is
// dataDir.
func readMemberLog(dataDir string) (memberLog, error) {
	dir := filepath.Join(dataDir, "member", "pebble")
	eng, err := pebbleengine.Open(dir, pebbleengine.Options{})
	if err != nil {
		return memberLog{}, fmt.Errorf("open %s: %w", dir, err)
	}
	defer eng.Close()
	hs, ents, err := raftlog.ReadPersisted(eng)
	if err != nil {
		return memberLog{}, fmt.Errorf("read raft log of %s: %w", dataDir, err)
	}
	return memberLog{dir: dataDir, commit: hs.GetCommit(), entries: ents}, nil
}

// PersistedRequests returns the requests in the merged Raft logs of the
// stopped members with these data dirs, in log order, as etcd's model sees
// them.
func PersistedRequests(dataDirs []string) ([]model.EtcdRequest, error) {
	var logs []memberLog
	for _, d := range dataDirs {
		l, err := readMemberLog(d)
		if err != nil {
			return nil, err
		}
		logs = append(logs, l)
	}
	ents, err := mergeLogs(logs)
	if err != nil {
		return nil, err
	}
	var reqs []model.EtcdRequest
	for _, e := range ents {
		if e.GetType() != raftpb.EntryType_EntryNormal || len(e.Data) == 0 {
			continue
		}
		r, err := toModelRequest(e.Data)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", e.GetIndex(), err)
		}
		if r != nil {
			reqs = append(reqs, *r)
		}
	}
	return reqs, nil
}

// mergeLogs builds the cluster's log from the members' logs: at each index
// from 1, the entries of members that committed it must all be the same
// (else the cluster broke Raft's safety and the error says where); past
// every member's commit index the entry of the highest term wins (the
// latest leader's). An index no member holds is an error: validation
// would miss requests.
func mergeLogs(logs []memberLog) ([]*raftpb.Entry, error) {
	byIndex := make([]map[uint64]*raftpb.Entry, len(logs))
	var last uint64
	for i, l := range logs {
		byIndex[i] = make(map[uint64]*raftpb.Entry, len(l.entries))
		for _, e := range l.entries {
			byIndex[i][e.GetIndex()] = e
			last = max(last, e.GetIndex())
		}
	}
	var out []*raftpb.Entry
	for idx := uint64(1); idx <= last; idx++ {
		var committed, best *raftpb.Entry
		var committedAt string
		for i, l := range logs {
			e := byIndex[i][idx]
			if e == nil {
				continue
			}
			if idx <= l.commit {
				if committed != nil && !sameEntry(committed, e) {
					return nil, fmt.Errorf("committed entry %d differs: term %d in %s, term %d in %s", idx, committed.GetTerm(), committedAt, e.GetTerm(), l.dir)
				}
				committed, committedAt = e, l.dir
			}
			if best == nil || e.GetTerm() > best.GetTerm() {
				best = e
			}
		}
		switch {
		case committed != nil:
			out = append(out, committed)
		case best != nil:
			out = append(out, best)
		default:
			return nil, fmt.Errorf("no member holds raft entry %d (last %d)", idx, last)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no raft entries persisted")
	}
	return out, nil
}

func sameEntry(a, b *raftpb.Entry) bool {
	return a.GetTerm() == b.GetTerm() && a.GetType() == b.GetType() && bytes.Equal(a.Data, b.Data)
}

// toModelRequest decodes an entry's InternalRaftRequest into the request
// etcd's model replays, or nil for requests the model does not track
// (membership, auth, alarms, lease checkpoints, ...).
func toModelRequest(data []byte) (*model.EtcdRequest, error) {
	var r pb.InternalRaftRequest
	if err := proto.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode InternalRaftRequest: %w", err)
	}
	txn := func(ops ...model.EtcdOperation) *model.EtcdRequest {
		return &model.EtcdRequest{Type: model.Txn, Txn: &model.TxnRequest{OperationsOnSuccess: ops}}
	}
	switch {
	case r.Put != nil:
		return txn(model.EtcdOperation{Type: model.PutOperation, Put: model.PutOptions{
			Key: string(r.Put.Key), Value: model.ToValueOrHash(string(r.Put.Value)), LeaseID: r.Put.Lease}}), nil
	case r.DeleteRange != nil:
		if len(r.DeleteRange.RangeEnd) != 0 {
			return nil, fmt.Errorf("range delete [%q, %q) is not in etcd's model", r.DeleteRange.Key, r.DeleteRange.RangeEnd)
		}
		return txn(model.EtcdOperation{Type: model.DeleteOperation, Delete: model.DeleteOptions{Key: string(r.DeleteRange.Key)}}), nil
	case r.Txn != nil:
		t := &model.TxnRequest{Conditions: []model.EtcdCondition{}, OperationsOnSuccess: []model.EtcdOperation{}, OperationsOnFailure: []model.EtcdOperation{}}
		for _, c := range r.Txn.Compare {
			switch {
			case c.Result == pb.Compare_EQUAL && c.Target == pb.Compare_VERSION:
				t.Conditions = append(t.Conditions, model.EtcdCondition{Key: string(c.Key), ExpectedVersion: c.GetVersion()})
			case c.Result == pb.Compare_EQUAL && c.Target == pb.Compare_MOD:
				t.Conditions = append(t.Conditions, model.EtcdCondition{Key: string(c.Key), ExpectedRevision: c.GetModRevision()})
			default:
				return nil, fmt.Errorf("txn compare %v is not in etcd's model", c)
			}
		}
		for _, ops := range []struct {
			from []*pb.RequestOp
			to   *[]model.EtcdOperation
		}{{r.Txn.Success, &t.OperationsOnSuccess}, {r.Txn.Failure, &t.OperationsOnFailure}} {
			for _, op := range ops.from {
				o, err := toModelOp(op)
				if err != nil {
					return nil, err
				}
				*ops.to = append(*ops.to, o)
			}
		}
		return &model.EtcdRequest{Type: model.Txn, Txn: t}, nil
	case r.Compaction != nil:
		return &model.EtcdRequest{Type: model.Compact, Compact: &model.CompactRequest{Revision: r.Compaction.Revision}}, nil
	case r.LeaseGrant != nil:
		return &model.EtcdRequest{Type: model.LeaseGrant, LeaseGrant: &model.LeaseGrantRequest{LeaseID: r.LeaseGrant.ID}}, nil
	case r.LeaseRevoke != nil:
		return &model.EtcdRequest{Type: model.LeaseRevoke, LeaseRevoke: &model.LeaseRevokeRequest{LeaseID: r.LeaseRevoke.ID}}, nil
	}
	return nil, nil
}

func toModelOp(op *pb.RequestOp) (model.EtcdOperation, error) {
	switch {
	case op.GetRequestRange() != nil:
		r := op.GetRequestRange()
		return model.EtcdOperation{Type: model.RangeOperation, Range: model.RangeOptions{
			Start: string(r.Key), End: string(r.RangeEnd), Limit: r.Limit, KeysOnly: r.KeysOnly}}, nil
	case op.GetRequestPut() != nil:
		p := op.GetRequestPut()
		return model.EtcdOperation{Type: model.PutOperation, Put: model.PutOptions{
			Key: string(p.Key), Value: model.ToValueOrHash(string(p.Value)), LeaseID: p.Lease}}, nil
	case op.GetRequestDeleteRange() != nil:
		d := op.GetRequestDeleteRange()
		if len(d.RangeEnd) != 0 {
			return model.EtcdOperation{}, fmt.Errorf("range delete [%q, %q) in a txn is not in etcd's model", d.Key, d.RangeEnd)
		}
		return model.EtcdOperation{Type: model.DeleteOperation, Delete: model.DeleteOptions{Key: string(d.Key)}}, nil
	}
	return model.EtcdOperation{}, fmt.Errorf("txn op %v is not in etcd's model", op)
}
