// Package version holds the version constants metastore reports.
//
// metastore speaks etcd's API, and clients decide which features to use from
// the etcd version a server reports (Kubernetes parses Status.version as
// semver; etcd's e2e framework parses the "etcd Version:" line of --version).
// So the etcd version we are compatible with is reported wherever etcd would
// report its own version, and metastore's own version only in addition.
package version
