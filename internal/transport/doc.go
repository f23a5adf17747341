// Package transport carries raft messages between the members of a
// cluster over their peer URLs, and serves the receiving side.
//
// Each remote member gets two long-lived HTTP/1.1 POST streams, opened
// lazily and reopened with backoff after a failure:
//
//   - /raft/stream/msgapp carries MsgApp, the large messages;
//   - /raft/stream/message carries everything else (heartbeats, votes,
//     responses), so those never queue behind a megabyte of entries on the
//     same TCP connection. It is kept connected even while idle, so that
//     every member knows since when every peer is reachable (ActiveSince,
//     which the strict reconfiguration checks need).
//
// A MsgSnap travels alone on a POST to /raft/snapshot, followed by the state
// image it stands for (see Snapshots and internal/raftsnap), so an image of
// many GiB never holds up appends; the receiver steps the message once the
// image is staged, and the sender reports the outcome to raft.
//
// Why a streamed HTTP/1.1 request body rather than one request per batch or
// HTTP/2: a stream needs no request/response round trip per batch, so a
// message leaves as soon as the writer goroutine picks it up (the client
// flushes after each chunk and TCP_NODELAY is on), and batching happens by
// itself: whatever queued while the previous write was in the kernel goes
// out in the next one. Two TCP connections per peer give the two classes
// independent congestion windows and no head-of-line blocking between them,
// which one h2c connection would not (its streams share one TCP stream).
// HTTP/1.1 also needs no special server configuration from the peer
// listener: the handler switches its request to full duplex itself.
//
// A stream request the peer has not answered within AcceptTimeout is
// abandoned and dialed again: net/http's RoundTrip of a streamed body does
// not return when the connection closes before an answer while the body is
// idle, and an idle message stream would otherwise never connect (nor its
// peer count as reachable).
//
// Send never blocks: each stream has a bounded queue, and a message that
// does not fit is dropped and the peer reported unreachable; raft
// retransmits. While a peer cannot be reached its queued messages are
// dropped too, so a reconnection starts with fresh messages, not stale ones.
//
// Framing: every message is a frame of a 4-byte big-endian length, a
// 4-byte CRC-32C over the length and the payload, then the raftpb.Message
// protobuf. A frame that fails its check is counted and the connection is
// aborted; the sender reconnects and raft retransmits what was lost.
//
// The receiver checks the cluster ID, the protocol version and the
// addressee of each stream (412 Precondition Failed on a mismatch) and the
// sender of each message, then hands it to Raft.Step.
package transport
