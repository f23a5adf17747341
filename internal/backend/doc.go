// Package backend is the request path between the gRPC services and the
// replicated state: writes become Raft proposals whose results it waits
// for; reads are served locally, after a ReadIndex barrier unless the
// client asked for a serializable read. It holds the consistency rules in
// one place so every service applies them the same way.
package backend
