// Command metastore runs one member of a metastore cluster, a drop-in
// replacement for etcd v3.7.3: it takes etcd's flags, ETCD_* environment
// variables and etcd's YAML --config-file.
//
// main only turns arguments into a validated config.Config, builds the
// logger and hands both to the server package; everything else lives there.
// A configuration error is one line on stderr and exit status 2, before
// anything is written to disk. SIGTERM or SIGINT stops the server
// gracefully within --shutdown-timeout (exit 0, or 1 if it could not).
package main
