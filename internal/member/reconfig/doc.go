// Package reconfig owns runtime membership changes on a member: etcd's
// policy for MemberAdd, MemberRemove, MemberUpdate and MemberPromote (the
// --strict-reconfig-check quorum arithmetic over the peers that have been
// reachable long enough, the learner catch-up rule only the leader can
// judge), proposing the conf change and waiting until it is applied, and
// forwarding a promotion from a follower to the leader over the peer
// listener (peerapi.PathPromote), whose handler is here too.
//
// The rules every member applies to a committed change (the ID exists,
// was removed, --max-learners) are internal/membership's, so that all
// members accept or refuse a change alike; this package only decides
// whether to propose one.
package reconfig
