// Package listen turns etcd's listen URLs into listeners: the schemes
// etcd accepts (http, https, unix, unixs), unix socket paths as etcd reads
// them (and a stale socket file left by a killed process removed),
// --socket-reuse-port and --socket-reuse-address; and the small facts the
// client listeners are built on: which URL and endpoint the member's own
// client dials, and how one TLS port serves gRPC and HTTP side by side.
package listen
