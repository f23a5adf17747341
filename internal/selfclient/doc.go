// Package selfclient is the member's client of its own client port, on
// which the lock and election services run etcd's concurrency recipes, as
// etcd's do. Each call goes out as the user who called the service: the
// caller's auth token is passed on, as etcd's in-process v3client does
// with the caller's context.
package selfclient
