// Package server is metastore's public, embeddable composition root: New
// builds a member from a config.Config, Start opens storage, starts Raft and
// the listeners, Stop shuts down in four phases. It wires the internal
// packages together and holds no domain logic of its own.
package server
