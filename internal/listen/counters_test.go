package listen

import (
	"net"
	"testing"

	"go.uber.org/zap"
)

func TestCountersReportTheFullestListener(t *testing.T) {
	c := NewCounters(2)
	var ls []net.Listener
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, c.Wrap(l, zap.NewNop()))
		t.Cleanup(func() { l.Close() })
	}
	for i := range 2 {
		conn, err := net.Dial("tcp", ls[0].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		in, err := ls[0].Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		if got := c.Count(); got != int64(i+1) {
			t.Fatalf("after %d connections on one listener: Count %d", i+1, got)
		}
	}
	if c.Max() != 2 || NewCounters(-1).Max() != 0 {
		t.Fatalf("Max %d / %d", c.Max(), NewCounters(-1).Max())
	}
}
