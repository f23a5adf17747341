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
// With -mode size it loads Kubernetes-shaped data (/registry/<kind>/<ns>/<name>,
// values of 1-10 KiB of random bytes, or with -values objects bytes shaped
// like Kubernetes objects, which a block compressor shrinks about 1.9x) to
// -size-gib of live keys and values,
// writes a few more revisions of a tenth of the keys, then measures on the
// same member: put, get, 500-key page and whole-prefix count latencies; put
// and get p99 while a compaction of every revision but the latest runs;
// disk use and peak RSS; restart to ready after SIGTERM and after kill -9
// with the RSS right after; and the time a new member takes from its start
// on an empty data dir until it serves the latest revision. A NOSPACE during
// the load (etcd past its quota) is recorded and cleared as an operator
// would: delete 5% of the keys, compact, defragment, disarm.
//
//	go run ./bench/scale -mode size -size-gib 1 -metastore /tmp/metastore -etcd .bin/etcd-ref \
//	    -metastore-args "--quota-backend-bytes 68719476736"
//
// It is a measurement program, not a test: numbers depend on the machine.
package main
