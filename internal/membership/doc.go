// Package membership keeps the cluster's members (ID, name, peer and client
// URLs, learner flag) and derives member and cluster IDs the way etcd does,
// so that IDs are stable across restarts and identical on every member. It
// also holds etcd's rules for membership changes: the validation every
// member applies to a committed conf change (so all accept or refuse it
// alike) and the checks of --strict-reconfig-check.
package membership
