// Package config is metastore's aggregate configuration: one typed Config,
// parsed from etcd v3.7.3's command-line flags, ETCD_* environment variables
// or an etcd-style YAML --config-file, and validated with one-line messages
// that name the flag at fault.
//
// metastore is a drop-in replacement for etcd, so every etcd flag is
// accepted with etcd's defaults and precedence rules (see Parse). Flags the
// server does not act on yet are still accepted; implemented.go is the one
// table saying which are live, and UnimplementedSet reports the ones a user
// set anyway so the server can warn about them.
package config
