package framework

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer answers each line it reads with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// dialFrom opens a connection through p whose first request names sender.
func dialFrom(t *testing.T, p *PeerProxy, sender string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hdr := "POST /raft/stream/message HTTP/1.1\r\nHost: x\r\nX-Metastore-From: " + sender + "\r\n\r\n"
	if _, err := c.Write([]byte(hdr)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	got := make([]byte, len(hdr))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != hdr {
		t.Fatalf("header echo = %q, %v", got, err)
	}
	return c, br
}

func roundTrip(c net.Conn, br *bufio.Reader, line string, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	s, err := br.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func TestPeerProxyFaults(t *testing.T) {
	p, err := NewPeerProxy("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, abr := dialFrom(t, p, "a")
	b, bbr := dialFrom(t, p, "b")
	if s, err := roundTrip(a, abr, "hello", 5*time.Second); err != nil || s != "hello" {
		t.Fatalf("plain: %q, %v", s, err)
	}

	// A blackhole on what "a" sends leaves "b" alone.
	p.SetFrom("a", LinkFault{Blackhole: true})
	if _, err := roundTrip(a, abr, "lost", 300*time.Millisecond); err == nil {
		t.Fatal("bytes crossed a blackhole")
	}
	if s, err := roundTrip(b, bbr, "b-ok", 5*time.Second); err != nil || s != "b-ok" {
		t.Fatalf("other sender during blackhole: %q, %v", s, err)
	}
	// Lifting it resets the connection that lost bytes.
	p.Heal()
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := abr.ReadString('\n'); err == nil {
		t.Fatal("connection that crossed a blackhole survived the heal")
	}

	// Delay on everything towards the member.
	p.SetIncoming(LinkFault{Delay: 200 * time.Millisecond})
	begin := time.Now()
	if s, err := roundTrip(b, bbr, "slow", 5*time.Second); err != nil || s != "slow" {
		t.Fatalf("delayed: %q, %v", s, err)
	}
	if d := time.Since(begin); d < 200*time.Millisecond {
		t.Fatalf("delayed round trip took %v", d)
	}
	p.Heal()
}
