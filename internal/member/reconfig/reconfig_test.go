package reconfig

import "testing"

// etcd's mayRemoveMember: after removing one active voter, the active
// voters left must be a quorum of the voters left.
func TestQuorumAfterRemoval(t *testing.T) {
	cases := []struct {
		voters, active int
		ok             bool
	}{
		{1, 1, false}, // removing the only voter leaves no quorum
		{2, 2, true},
		{2, 1, false},
		{3, 3, true},
		{3, 2, false}, // one down: removing another active leaves 1 of 2
		{4, 4, true},
		{4, 3, true},
		{5, 4, true},
		{5, 3, false},
		{5, 5, true},
	}
	for _, c := range cases {
		if got := quorumAfterRemoval(c.voters, c.active); got != c.ok {
			t.Errorf("voters %d active %d: got %v, want %v", c.voters, c.active, got, c.ok)
		}
	}
}
