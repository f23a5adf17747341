package peerapi

import (
	"fmt"
	"net/http"
)

// Prefix is the path under which every peer route lives.
const Prefix = "/raft/"

// Routes of internal/transport: raft's messages.
const (
	PathStreamMsgApp  = "/raft/stream/msgapp"
	PathStreamMessage = "/raft/stream/message"
	PathSnapshot      = "/raft/snapshot"
)

// Routes of the other peer calls, served by Handlers.
const (
	PathLeaseRenew      = "/raft/lease/renew"
	PathLeaseTimeToLive = "/raft/lease/ttl"
	PathHashKV          = "/raft/hashkv"
	PathMembers         = "/raft/members"
	PathPromote         = "/raft/members/promote"
	PathVersion         = "/raft/version"
)

// Handlers are the handlers of every peer route that is not a raft
// message. Each is required: a member that does not answer one of them
// breaks its peers.
type Handlers struct {
	LeaseRenew      http.HandlerFunc // the leader renews a lease a follower was asked to keep alive
	LeaseTimeToLive http.HandlerFunc // the leader answers a follower's lease TTL query
	HashKV          http.HandlerFunc // this member's HashKV, for the leader's corruption check
	Members         http.HandlerFunc // the cluster ID and member list, for a joining member
	Promote         http.HandlerFunc // the leader promotes a learner a follower was asked to promote
	Version         http.HandlerFunc // this member's server version, for the leader's downgrade check
}

// Mux is where the routes are registered (the transport's peer mux).
type Mux interface {
	HandleFunc(path string, h http.HandlerFunc)
}

// Register adds every route of h to mux.
func (h Handlers) Register(mux Mux) error {
	routes := []struct {
		path string
		h    http.HandlerFunc
	}{
		{PathLeaseRenew, h.LeaseRenew},
		{PathLeaseTimeToLive, h.LeaseTimeToLive},
		{PathHashKV, h.HashKV},
		{PathMembers, h.Members},
		{PathPromote, h.Promote},
		{PathVersion, h.Version},
	}
	for _, r := range routes {
		if r.h == nil {
			return fmt.Errorf("peerapi: no handler for %s", r.path)
		}
		mux.HandleFunc(r.path, r.h)
	}
	return nil
}
