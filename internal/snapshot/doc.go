// Package snapshot packs a consistent engine checkpoint into the byte
// stream etcd's Maintenance.Snapshot carries (a tar archive, a multiple of
// 512 bytes, followed by its SHA-256, which is what `etcdctl snapshot save`
// checks for) and restores such a file into a new data directory with a
// fresh cluster identity, the way `etcdutl snapshot restore` does for etcd.
package snapshot
