package robustness

import (
	"bytes"
	"testing"
)

// TestBootstrapEntriesIdentical is the regression test for the first bug
// the campaign found: every member of a new cluster writes the conf
// changes that add the initial members itself, and they were written in
// map iteration order, so members disagreed on log entries 1..n at the same
// term, breaking Raft's log matching property (and the merge of the logs
// that validation needs). With five members a random order shows up in
// all but 1 run in 625.
func TestBootstrapEntriesIdentical(t *testing.T) {
	c := StartCluster(t, ClusterConfig{Size: 5, SnapshotCount: 10000, CatchupEntries: 5000, HeartbeatMillis: 100, ElectionMillis: 1000})
	c.StopAll()
	var first memberLog
	for i, m := range c.Every {
		l, err := readMemberLog(m.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.entries) < 5 {
			t.Fatalf("%s holds %d entries, want the 5 bootstrap conf changes", m.Name, len(l.entries))
		}
		if i == 0 {
			first = l
			continue
		}
		for j := range 5 {
			a, b := first.entries[j], l.entries[j]
			if a.GetIndex() != b.GetIndex() || a.GetTerm() != b.GetTerm() || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("bootstrap entry %d differs between %s and %s:\n%q\n%q", a.GetIndex(), c.Every[0].Name, m.Name, a.Data, b.Data)
			}
		}
	}
}
