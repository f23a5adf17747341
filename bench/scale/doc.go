// Command scale measures memory under many concurrent unpaginated LISTs of a
// big prefix (issue 11), for metastore and the reference etcd in one run:
// for each server it loads N keys of S bytes under one prefix, then runs C
// concurrent LISTs of the whole prefix while a writer puts, and reports peak
// RSS (VmHWM from /proc, reset after the load), whether every LIST
// succeeded, the LIST durations and the put p99 meanwhile.
//
// Usage (from the repository root):
//
//	go build -o /tmp/metastore ./cmd/metastore
//	go run ./bench/scale -metastore /tmp/metastore -etcd .bin/etcd-ref \
//	    -keys 100000 -value 1024 -lists 20
//
// With -mode watch it measures instead what one stalled watch stream costs
// the writers: W watchers over K keys on S streams, all drained, then a put
// load twice — without, then with one more stream that watches every key and
// is never read — and reports put p50/p99 of both phases and their ratio.
//
//	go run ./bench/scale -mode watch -metastore /tmp/metastore -etcd .bin/etcd-ref \
//	    -watchers 100000 -watch-keys 10000 -watch-streams 100 -puts 20000
//
// It is a measurement program, not a test: numbers depend on the machine.
package main
