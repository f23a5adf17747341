package server_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/server"
)

// freeURL returns an http URL on a loopback port that was free a moment
// ago: the member must know its own URLs before it listens, because they
// go into its member ID.
func freeURL() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

// Example starts a one-member cluster on the memory engine, writes a key
// and reads it back through the etcd v3 client, then stops the member.
func Example() {
	clientURL, peerURL := freeURL(), freeURL()
	cfg, err := server.ParseFlags([]string{
		"--name", "m1",
		"--storage-engine", "memory",
		"--data-dir", os.TempDir(), // the memory engine keeps nothing there
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "m1=" + peerURL,
	}, nil)
	if err != nil {
		fmt.Println("config:", err)
		return
	}
	srv, err := server.New(cfg, nil)
	if err != nil {
		fmt.Println("new:", err)
		return
	}
	if err := srv.Start(); err != nil { // returns once the member serves
		fmt.Println("start:", err)
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			fmt.Println("stop:", err)
		}
	}()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("client:", err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "greeting", "hello"); err != nil {
		fmt.Println("put:", err)
		return
	}
	resp, err := cli.Get(ctx, "greeting")
	if err != nil {
		fmt.Println("get:", err)
		return
	}
	fmt.Printf("%s=%s\n", resp.Kvs[0].Key, resp.Kvs[0].Value)
	// Output: greeting=hello
}
