// Package e2e holds black-box end-to-end tests of the metastore binary: it
// is started as a process (tests/framework) and driven with clientv3 v3.7.3,
// the real etcdctl v3.7.3 and plain HTTP, asserting etcd v3.7.3's exact
// behaviour. Every test also passes against the reference etcd:
//
//	METASTORE_E2E_SERVER_BIN=.bin/etcd-ref go test ./tests/e2e/
package e2e
