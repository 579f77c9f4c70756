package upstream

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/h2"
)

// soKeepalive reads SO_KEEPALIVE of the pool's only connection.
func soKeepalive(t *testing.T, p *Pool) bool {
	t.Helper()
	p.mu.Lock()
	c := p.conns[0]
	p.mu.Unlock()
	raw, err := c.NetConn().(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return v != 0
}

// TestPoolSocketKeepalive: grpc_socket_keepalive turns SO_KEEPALIVE on;
// without it the socket has none, as in nginx (Go's dialer would enable it).
func TestPoolSocketKeepalive(t *testing.T) {
	b := startH2Backend(t, 100, 0)
	for _, on := range []bool{false, true} {
		set := NewSet(nil, h2.DefaultLimits())
		// keepalive keeps the connection once its stream is done
		// (without it the pool closes it: CloseIdle), so it can be looked at.
		p := set.pool(&config.Upstream{Name: "up", Keepalive: 8}, "tcp", b.ln.Addr().String(), GroupOptions{SocketKeepalive: on})
		r := &recorder{done: make(chan error, 1)}
		if err := open(t, p, r); err != nil {
			t.Fatal(err)
		}
		if got := soKeepalive(t, p); got != on {
			t.Errorf("grpc_socket_keepalive %v: SO_KEEPALIVE is %v", on, got)
		}
		p.Close()
	}
}

// TestPoolKeepaliveTime: a connection older than the upstream's
// keepalive_time takes no new streams; the next stream gets a new one and
// the old one closes.
func TestPoolKeepaliveTime(t *testing.T) {
	b := startH2Backend(t, 100, 0)
	set := NewSet(nil, h2.DefaultLimits())
	p := set.pool(&config.Upstream{Name: "up", Keepalive: 8, KeepaliveTime: 100 * time.Millisecond}, "tcp", b.ln.Addr().String(), GroupOptions{})
	defer p.Close()
	r := &recorder{done: make(chan error, 2)}
	if err := open(t, p, r); err != nil {
		t.Fatal(err)
	}
	<-r.done
	p.mu.Lock()
	first := p.conns[0]
	p.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for first.CanOpen() {
		if time.Now().After(deadline) {
			t.Fatal("connection still takes streams past keepalive_time")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := open(t, p, r); err != nil {
		t.Fatal(err)
	}
	<-r.done
	for {
		// The retired connection closes once its stream is done; the
		// new one stays (keepalive).
		p.mu.Lock()
		n := len(p.conns)
		last := n > 0 && p.conns[n-1] == first
		p.mu.Unlock()
		if n <= 1 && !last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections; the retired one should have closed", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
