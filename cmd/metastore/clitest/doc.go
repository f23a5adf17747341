// Package clitest builds the metastore binary and checks its command-line
// contract: exit statuses, the one-line error on bad configuration, and the
// --version lines that etcd's tooling parses.
//
// It is a separate package so that it compiles (and skips) even while the
// server package the binary needs does not exist yet.
package clitest
