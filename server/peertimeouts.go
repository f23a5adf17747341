package server

import (
	"net/http"
	"time"
)

// peerServer is the HTTP server of one peer listener. As on etcd's peer
// listeners (rafthttp's ConnReadTimeout), reading a request is bounded by
// --raft-read-timeout, so a peer that stalls mid-request cannot hold a
// connection and a handler forever; the long-lived message and snapshot
// streams lift the bound for themselves (internal/transport).
// --raft-write-timeout bounds each write on the connections this member
// dials to its peers (transport.Config.WriteTimeout), where the message
// streams flow.
func (s *Server) peerServer() *http.Server {
	return &http.Server{
		Handler:           s.transport.Handler(),
		ReadHeaderTimeout: min(10*time.Second, s.cfg.Raft.PeerReadTimeout),
		ReadTimeout:       s.cfg.Raft.PeerReadTimeout,
	}
}
