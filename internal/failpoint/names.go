package failpoint

import "fmt"

// The failpoints, by etcd's names where the step is the same as etcd's.
const (
	// Raft loop (internal/raftnode), in the order of one Ready.

	// RaftBeforeLeaderSend: a leader, before sending the Ready's messages
	// (it sends before persisting, as etcd does).
	RaftBeforeLeaderSend = "raftBeforeLeaderSend"
	// RaftBeforeSave / RaftAfterSave: around the synced batch that persists
	// the Ready's entries and HardState.
	RaftBeforeSave = "raftBeforeSave"
	RaftAfterSave  = "raftAfterSave"
	// RaftBeforeFollowerSend: a follower or candidate, after persisting,
	// before sending the Ready's messages.
	RaftBeforeFollowerSend = "raftBeforeFollowerSend"
	// RaftBeforeAdvance: before telling raft the Ready is handled.
	RaftBeforeAdvance = "raftBeforeAdvance"

	// Apply loop (internal/apply).

	// BeforeApplyOneEntryNormal / BeforeApplyOneConfChange: before staging
	// one committed entry of the given kind into the apply batch.
	BeforeApplyOneEntryNormal = "beforeApplyOneEntryNormal"
	BeforeApplyOneConfChange  = "beforeApplyOneConfChange"
	// BeforeCommit / AfterCommit: around the commit of an apply batch (the
	// state and the applied index together; etcd's backend batch commit).
	BeforeCommit = "beforeCommit"
	AfterCommit  = "afterCommit"
	// CompactBeforeCommitScheduledCompact / CompactAfterCommitScheduledCompact:
	// around the commit of an apply batch that schedules a compaction (the
	// scheduled revision is persisted with the batch, where etcd forces a
	// backend commit of it).
	CompactBeforeCommitScheduledCompact = "compactBeforeCommitScheduledCompact"
	CompactAfterCommitScheduledCompact  = "compactAfterCommitScheduledCompact"
	// RaftBeforeCompactLog / RaftAfterCompactLog (ours): around trimming the
	// Raft log after --snapshot-count applied entries, where etcd saves a
	// snapshot of its backend.
	RaftBeforeCompactLog = "raftBeforeCompactLog"
	RaftAfterCompactLog  = "raftAfterCompactLog"

	// Snapshot installation on a follower (internal/raftsnap), ADR 0004.

	// RaftBeforeSaveSnap / RaftAfterSaveSnap: around the synced commit of
	// the installation marker, which makes the received snapshot durable.
	RaftBeforeSaveSnap = "raftBeforeSaveSnap"
	RaftAfterSaveSnap  = "raftAfterSaveSnap"
	// RaftBeforeApplySnap / RaftAfterApplySnap: around the synced batch that
	// records the snapshot in the Raft log (after the live state was
	// replaced by the image), which completes the installation.
	RaftBeforeApplySnap = "raftBeforeApplySnap"
	RaftAfterApplySnap  = "raftAfterApplySnap"

	// Physical compaction (internal/mvcc), on its own goroutine.

	// CompactBeforeCommitBatch / CompactAfterCommitBatch: around the commit
	// of one intermediate batch of deletions.
	CompactBeforeCommitBatch = "compactBeforeCommitBatch"
	CompactAfterCommitBatch  = "compactAfterCommitBatch"
	// CompactBeforeSetFinishedCompact / CompactAfterSetFinishedCompact:
	// around the last batch, which records the finished compaction.
	CompactBeforeSetFinishedCompact = "compactBeforeSetFinishedCompact"
	CompactAfterSetFinishedCompact  = "compactAfterSetFinishedCompact"

	// Defragmentation (internal/member/maintenance).

	// DefragBeforeCopy: after Defragment has taken its turn (and, with
	// StopGRPCServiceOnDefrag, reported NOT_SERVING), before the engine
	// rewrites its data, where etcd copies its bbolt file. Reached through
	// Hold: a term that returns a value keeps the defragmentation here.
	DefragBeforeCopy = "defragBeforeCopy"

	// Peer transport (internal/transport).

	// RaftBeforeSendSnap (ours): a leader, before it streams a snapshot
	// image to a follower.
	RaftBeforeSendSnap = "raftBeforeSendSnap"

	// Watch streams (internal/rpc).

	// BeforeSendWatchResponse: before a watch response is sent to its
	// client stream, on the stream's send goroutine.
	BeforeSendWatchResponse = "beforeSendWatchResponse"
)

// Names lists every failpoint, in the order above.
func Names() []string {
	return []string{
		RaftBeforeLeaderSend, RaftBeforeSave, RaftAfterSave, RaftBeforeFollowerSend, RaftBeforeAdvance,
		BeforeApplyOneEntryNormal, BeforeApplyOneConfChange, BeforeCommit, AfterCommit,
		CompactBeforeCommitScheduledCompact, CompactAfterCommitScheduledCompact,
		RaftBeforeCompactLog, RaftAfterCompactLog,
		RaftBeforeSaveSnap, RaftAfterSaveSnap, RaftBeforeApplySnap, RaftAfterApplySnap,
		CompactBeforeCommitBatch, CompactAfterCommitBatch, CompactBeforeSetFinishedCompact, CompactAfterSetFinishedCompact,
		DefragBeforeCopy, RaftBeforeSendSnap, BeforeSendWatchResponse,
	}
}

// PanicMessage is the message of the Crash a failpoint built with -tags
// failpoints panics with when its gofail term panics with v.
func PanicMessage(name string, v any) string {
	return fmt.Sprintf("failpoint %s: %v", name, v)
}

// Crash is the value a failpoint's `panic` term panics with. It stands for
// the process dying at that step (etcd's failpoints kill etcd there), so the
// recoverers that keep a request's or a goroutine's panic from taking the
// member down (internal/middleware, internal/lifecycle) panic again with it
// instead of turning it into an error: a test that crashes a member at a
// failpoint must see the member die. It is an error so that the runtime
// prints its message after "panic: ", which those tests look for in the log.
type Crash struct{ msg string }

// NewCrash returns the Crash of failpoint name panicking with v.
func NewCrash(name string, v any) *Crash { return &Crash{msg: PanicMessage(name, v)} }

func (c *Crash) Error() string { return c.msg }

// IsCrash reports whether a recovered panic value is a failpoint's Crash.
func IsCrash(v any) bool {
	_, ok := v.(*Crash)
	return ok
}
