// Package peers keeps the transport's peer set equal to the replicated
// member list: it adds, updates and removes peers as the applier applies
// membership changes (apply.MembershipObserver), re-syncs the whole set
// after a snapshot replaced the member list, and stops this member when it
// applies its own removal.
package peers
