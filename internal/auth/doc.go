// Package auth is etcd v3's authentication and role-based access control:
// users with bcrypt password hashes, roles holding key-range permissions,
// the root user/role rules, the auth revision that invalidates tokens
// issued before a change, and the token providers (simple and JWT).
//
// The state is replicated: every change is applied from the Raft log into
// the apply batch (engine keys under a/) and becomes visible to readers only
// once that batch commits, so every member decides permissions from the same
// state at the same log position.
package auth
