// Package discovery bootstraps a new cluster through etcd's v3 discovery
// protocol (--discovery-endpoints, --discovery-token and their TLS and
// auth flags): an existing etcd or metastore cluster holds, under
// /_etcd/registry/<token>/, the expected size (_config/size, put there by
// the operator) and one key per member that registered
// (members/<member id hex> = "name=peer-urls"). Each new member registers
// itself, waits with a watch until size members registered, and takes the
// first size of them, by creation revision, as its --initial-cluster, so
// every member of the new cluster computes the same list. As etcd, a member
// whose discovery service cannot be reached retries with etcd's back-off
// until it answers or the start is cancelled (docs/adr/0013-*).
//
// srv.go is etcd's DNS SRV discovery (--discovery-srv, --discovery-srv-name):
// the members are the targets of the _etcd-server-ssl and _etcd-server SRV
// records of a domain.
package discovery
