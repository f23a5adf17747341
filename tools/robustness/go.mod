module github.com/metastore/metastore/tools/robustness

go 1.26.8

require go.etcd.io/etcd/tests/v3 v3.7.3 // indirect
