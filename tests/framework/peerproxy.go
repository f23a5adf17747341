package framework

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// LinkFault is what a PeerProxy does to the bytes it forwards. The zero
// value forwards them untouched.
type LinkFault struct {
	// Blackhole discards every byte; connections that saw it are reset
	// when it is lifted, so the peers reconnect on clean streams.
	Blackhole bool
	// Delay (plus up to Jitter) holds every chunk before forwarding it,
	// keeping the order.
	Delay, Jitter time.Duration
	// DropRate is the probability in [0,1] that a chunk read from one side
	// is discarded: the receiving side then finds a broken frame and drops
	// the connection, as after a lost TCP segment that never arrives.
	DropRate float64
}

func (f LinkFault) active() bool { return f.Blackhole || f.Delay > 0 || f.DropRate > 0 }

// PeerProxy is a TCP proxy in front of one member's peer listener: the
// member listens on a private port and advertises the proxy's, so every
// raft message sent to it crosses the proxy, where a test injects faults
// (the peer-path network faults of tests/robustness). The sender of a
// connection is told from the X-Metastore-From header of its first
// request (the sending member's ID in hex), so faults can also target what
// one member sends.
type PeerProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	closed bool
	// in applies to bytes towards the member; from[id] to bytes towards
	// the member on connections opened by member id.
	in    LinkFault
	from  map[string]LinkFault
	conns map[*proxyConn]struct{}
	wg    sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	sender         string
	faulted        bool // guarded by PeerProxy.mu: saw a blackhole or drop
}

// NewPeerProxy listens on listenAddr and forwards to target (host:port).
func NewPeerProxy(listenAddr, target string) (*PeerProxy, error) {
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("peer proxy listen %s: %w", listenAddr, err)
	}
	p := &PeerProxy{ln: ln, target: target, from: map[string]LinkFault{}, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address.
func (p *PeerProxy) Addr() string { return p.ln.Addr().String() }

// SetIncoming applies f to everything sent to the member.
func (p *PeerProxy) SetIncoming(f LinkFault) { p.set(func() { p.in = f }, f) }

// SetFrom applies f to what member senderID (hex) sends to this member.
func (p *PeerProxy) SetFrom(senderID string, f LinkFault) {
	p.set(func() {
		if f.active() {
			p.from[senderID] = f
		} else {
			delete(p.from, senderID)
		}
	}, f)
}

// Heal removes every fault.
func (p *PeerProxy) Heal() {
	p.set(func() { p.in = LinkFault{}; clear(p.from) }, LinkFault{})
}

func (p *PeerProxy) set(change func(), f LinkFault) {
	p.mu.Lock()
	change()
	var reset []*proxyConn
	if !f.Blackhole && f.DropRate == 0 {
		for c := range p.conns {
			if c.faulted && !p.faultFor(c).active() {
				reset = append(reset, c)
			}
		}
	}
	p.mu.Unlock()
	for _, c := range reset {
		c.client.Close()
		c.server.Close()
	}
}

// faultFor is the fault on bytes towards the member on c; mu held.
func (p *PeerProxy) faultFor(c *proxyConn) LinkFault {
	f := p.in
	if g, ok := p.from[c.sender]; ok && c.sender != "" {
		f.Blackhole = f.Blackhole || g.Blackhole
		f.Delay = max(f.Delay, g.Delay)
		f.Jitter = max(f.Jitter, g.Jitter)
		f.DropRate = max(f.DropRate, g.DropRate)
	}
	return f
}

// Close stops the proxy and drops every connection.
func (p *PeerProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *PeerProxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(cc)
	}
}

func (p *PeerProxy) serve(cc net.Conn) {
	defer p.wg.Done()
	defer cc.Close()
	sc, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer sc.Close()
	c := &proxyConn{client: cc, server: sc}
	br := bufio.NewReaderSize(cc, 64<<10)
	// Peek at the first request's headers to learn the sender; the peek
	// stays in br and is forwarded as it is.
	_ = cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if hdr, err := peekHeader(br); err == nil {
		c.sender = hdr.Get("X-Metastore-From")
	}
	_ = cc.SetReadDeadline(time.Time{})
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { p.pipe(c, br, sc, true); done <- struct{}{} }()
	go func() { p.pipe(c, sc, cc, false); done <- struct{}{} }()
	<-done
	<-done
}

// peekHeader parses the HTTP request header at the front of br without
// consuming it, waiting only for as many bytes as the header needs.
func peekHeader(br *bufio.Reader) (http.Header, error) {
	for want := 1; want <= br.Size(); {
		if _, err := br.Peek(want); err != nil {
			return nil, err
		}
		b, _ := br.Peek(br.Buffered())
		if i := indexHeaderEnd(b); i >= 0 {
			req, err := http.ReadRequest(bufio.NewReader(&limitedBytes{b: b[:i]}))
			if err != nil {
				return nil, err
			}
			return req.Header, nil
		}
		want = len(b) + 1
	}
	return nil, errors.New("no request header")
}

func indexHeaderEnd(b []byte) int {
	for i := 0; i+3 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '\r' && b[i+3] == '\n' {
			return i + 4
		}
	}
	return -1
}

type limitedBytes struct{ b []byte }

func (l *limitedBytes) Read(p []byte) (int, error) {
	if len(l.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, l.b)
	l.b = l.b[n:]
	return n, nil
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst applying the fault of the moment to each chunk;
// toMember says which way the bytes go (faults apply to that way only,
// except a blackhole, which silences the reply way too).
func (p *PeerProxy) pipe(c *proxyConn, src io.Reader, dst net.Conn, toMember bool) {
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				f := p.faultFor(c)
				drop := f.Blackhole || (toMember && f.DropRate > 0 && rand.Float64() < f.DropRate)
				if drop {
					c.faulted = true
				}
				p.mu.Unlock()
				if !drop {
					d := time.Duration(0)
					if toMember && f.Delay > 0 {
						d = f.Delay
						if f.Jitter > 0 {
							d += rand.N(f.Jitter)
						}
					}
					q <- chunk{b: append([]byte(nil), buf[:n]...), at: time.Now().Add(d)}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		if wait := time.Until(ch.at); wait > 0 {
			time.Sleep(wait) // the injected delay itself
		}
		if _, err := dst.Write(ch.b); err != nil {
			break
		}
	}
	// Both ways end together: closing both sides unblocks the other
	// pipe and this pipe's reader.
	c.client.Close()
	c.server.Close()
	for range q { // let the reader finish
	}
}
