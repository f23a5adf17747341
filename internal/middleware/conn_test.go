package middleware

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLimitListenerRefusesOverMax(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rejected := make(chan net.Addr, 4)
	l := LimitListener(inner, 2, func(c net.Conn) { rejected <- c.RemoteAddr() })
	defer l.Close()
	reg := prometheus.NewRegistry()
	if err := l.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}

	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	s1, s2 := <-accepted, <-accepted
	if l.Count() != 2 {
		t.Fatalf("Count = %d, want 2", l.Count())
	}

	third := dial()
	<-rejected
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = third.Read(make([]byte, 1))
	if ne := net.Error(nil); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("third connection read = %v, want closed by the server (EOF or reset)", err)
	}
	out := scrape(t, reg)
	if !strings.Contains(out, "metastore_connections_current 2") || !strings.Contains(out, "metastore_connections_limit 2") {
		t.Fatalf("connection gauges wrong:\n%s", out)
	}

	s1.Close()
	s1.Close() // double close releases once
	if l.Count() != 1 {
		t.Fatalf("Count = %d after one close, want 1", l.Count())
	}
	dial()
	s3 := <-accepted
	if l.Count() != 2 {
		t.Fatalf("Count = %d, want 2", l.Count())
	}
	s2.Close()
	s3.Close()
	if l.Count() != 0 {
		t.Fatalf("Count = %d after closing all, want 0", l.Count())
	}
	select {
	case a := <-rejected:
		t.Fatalf("unexpected rejection of %v", a)
	default:
	}
}

func TestLimitListenerUnlimited(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := LimitListener(inner, 0, nil)
	defer l.Close()
	if l.Max() != 0 {
		t.Fatalf("Max = %d", l.Max())
	}
	done := make(chan net.Conn)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(done)
			return
		}
		done <- c
	}()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-done
	if sc == nil || l.Count() != 1 {
		t.Fatalf("unlimited listener did not accept (count %d)", l.Count())
	}
	sc.Close()
}
