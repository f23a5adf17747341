// Command compare measures metastore against the real etcd v3.7.3 with
// etcd's own benchmark tool (tools/benchmark v3.6.8), on this machine, in one
// run: a claim of "faster than etcd" only holds for numbers produced this way.
// bench/compare.sh runs it.
//
// Each round starts metastore, runs the whole suite, stops it, then does the
// same with etcd (A B A B ...): both servers see the same machine state, same
// flags, a fresh data dir under one work dir (same disk), default fsync. The
// table reports medians over the rounds and the ratio metastore/etcd.
// Members are started and stopped through tests/framework (Process), the
// benchmark tool and etcdctl come from scripts/install-tools.sh.
//
// Beside throughput and latency it records, per benchmark, the CPU the
// server (summed over its members) and the load generator used per request,
// which carries over to deployments where the two do not share cores;
// --pinned measures throughput with the members on one CPU and the load
// generator on another (pin.go); the suite also measures the floors of a
// put from one client, fdatasync and a loopback gRPC round trip
// (floors.go); --profile splits the server's CPU per request by owner
// (owners.go); --path follows a lone put's critical path through an
// execution trace of each server (path.go, bench/putpath).
//
// The modes, flags and environment variables are in usage (main.go).
package main
