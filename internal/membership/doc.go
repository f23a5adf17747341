// Package membership keeps the cluster's members (ID, name, peer and client
// URLs, learner flag) and derives member and cluster IDs the way etcd does,
// so that IDs are stable across restarts and identical on every member.
package membership
