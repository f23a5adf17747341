package simcluster

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestAnyDeliveryOrderConverges shuffles every batch of messages with a
// different seed: the message orders differ, yet every member ends with
// every write, in the same order, as raft promises.
func TestAnyDeliveryOrderConverges(t *testing.T) {
	orders := map[string]bool{}
	for seed := int64(1); seed <= 20; seed++ {
		c, err := New(3, Options{})
		if err != nil {
			t.Fatal(err)
		}
		step := func() {
			t.Helper()
			for range 1000 {
				did, err := c.Process()
				if err != nil {
					t.Fatal(err)
				}
				if !did && len(c.queue) == 0 {
					return
				}
				c.Reorder(seed)
				if err := c.Deliver(0, 0, 0); err != nil {
					t.Fatal(err)
				}
			}
			t.Fatal("no quiescence")
		}
		step()
		if err := c.Campaign(1); err != nil {
			t.Fatal(err)
		}
		step()
		for i := range 5 {
			k := fmt.Sprintf("k%d", i)
			if err := c.Propose(1, "put "+k, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte("v")}}); err != nil {
				t.Fatal(err)
			}
		}
		step()
		if err := c.Tick(1, 1); err != nil { // a heartbeat carries the last commit index
			t.Fatal(err)
		}
		step()
		var delivered []string
		for _, l := range c.Trace() {
			if strings.HasPrefix(l, "deliver ") {
				delivered = append(delivered, l)
			}
		}
		orders[strings.Join(delivered, "\n")] = true
		for _, id := range c.ids() {
			m := c.Member(id)
			if m.Store.Rev() != 6 {
				t.Fatalf("seed %d: member %d at revision %d, want 6\n%s", seed, id, m.Store.Rev(), c.status())
			}
			for i := range 5 {
				k := fmt.Sprintf("k%d", i)
				if got, _ := c.get(id, k); got != fmt.Sprintf("%s=v mod=%d lease=0 (rev 6)", k, i+2) {
					t.Fatalf("seed %d: member %d: %s", seed, id, got)
				}
			}
		}
		c.Close()
	}
	if len(orders) < 10 {
		t.Fatalf("20 seeds gave only %d message orders: reordering does little", len(orders))
	}
}
