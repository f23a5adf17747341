package alarm

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/metastore/metastore/internal/storage"
)

// StageImport stages alarms read from another store's snapshot (an etcd
// bbolt file) into b, for a restore into an empty engine.
func StageImport(b storage.Batch, alarms []*pb.AlarmMember) error {
	for _, a := range alarms {
		if a.Alarm == pb.AlarmType_NONE {
			continue
		}
		if err := b.Set(alarmKey(key{member: a.MemberID, typ: a.Alarm}), nil); err != nil {
			return fmt.Errorf("alarm: stage import: %w", err)
		}
	}
	return nil
}
