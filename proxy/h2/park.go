//go:build linux

package h2

import (
	"container/heap"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Parking idle connections. A goroutine blocked in Read costs its stack
// (2 KiB at least, often 4) and its descriptor (about 400 bytes) for as
// long as the connection is idle, which for a fleet of mostly idle gRPC
// clients is most of what a connection costs. So when a connection on a
// plain socket goes idle with no input pending, its reader registers the
// socket with one shared epoll instance and exits; the poller starts a new
// reader goroutine when input (or the peer's close) arrives, when the
// connection's read deadline passes (keepalive_timeout, liveness PINGs,
// lingering close), or when another goroutine closes or shuts down the
// connection (unpark). nginx keeps an idle connection the same way: a
// descriptor in its event loop and no stack.

// parker is the process's idle-connection poller, started on first use.
type parker struct {
	once sync.Once
	epfd int
	wake int // eventfd: a park with an earlier deadline than the poller's
	err  error

	mu    sync.Mutex
	conns map[int32]*Conn // parked, by descriptor
	dl    deadlines       // parked with a read deadline, earliest first
	next  time.Time       // the deadline the poller is waiting for
}

var idlePoller parker

// errWouldBlock is tryRead's answer when no input is there.
var errWouldBlock = errors.New("h2: no input")

// parkInit prepares c for parking if its socket allows it: a plain TCP or
// Unix socket (TLS keeps decrypted input of its own that epoll cannot see).
func (c *Conn) parkInit() {
	switch c.nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return
	}
	raw, err := c.nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return
	}
	c.raw = raw
	c.parkIdx = -1
	c.rawRead = func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), c.rawBuf)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				c.rawN, c.rawErr = 0, errWouldBlock
			case err != nil:
				c.rawN, c.rawErr = 0, err
			case n == 0:
				c.rawN, c.rawErr = 0, io.EOF
			default:
				c.rawN, c.rawErr = n, nil
			}
			return true // never wait: tryRead's caller decides
		}
	}
}

// tryRead reads what is there into p without waiting: errWouldBlock if
// nothing is, a timeout error if the read deadline has passed.
func (c *Conn) tryRead(p []byte) (int, error) {
	c.rawBuf = p
	err := c.raw.Read(c.rawRead)
	c.rawBuf = nil
	if err != nil {
		return 0, err
	}
	return c.rawN, c.rawErr
}

// park hands the idle connection to the poller and reports whether it
// did; the calling reader goroutine must then return at once.
func (c *Conn) park() bool {
	if c.raw == nil {
		return false
	}
	p := &idlePoller
	if p.once.Do(p.start); p.err != nil {
		return false
	}
	// p.mu before c.mu: whoever changes the deadline or closes the socket
	// calls unparked (taking p.mu) after, so either we see the change
	// here or they find the connection parked.
	p.mu.Lock()
	defer p.mu.Unlock()
	c.mu.Lock()
	dl := c.deadline
	closed := c.closed
	c.mu.Unlock()
	if closed || c.noPark {
		return false
	}
	var added bool
	// Inside Control the descriptor cannot be closed under us. Level
	// triggered: input that came before the registration wakes us at once.
	err := c.raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
		if unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) == nil {
			c.fd = int32(fd)
			added = true
		}
	})
	if err != nil || !added {
		return false
	}
	c.parked = true
	p.conns[c.fd] = c
	if !dl.IsZero() {
		c.parkDeadline = dl
		heap.Push(&p.dl, c)
		if p.next.IsZero() || dl.Before(p.next) {
			p.next = dl
			unix.Write(p.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		}
	}
	return true
}

// unparked takes c back from the poller and reports whether it was parked
// there; the caller then owes the connection a reader (go c.run()). A
// parked socket must leave the epoll set before its descriptor is closed,
// so whoever closes it, or changes what the reader must do (lingering
// close), calls this first, not holding c.mu; closing says the socket is
// about to be closed.
func (c *Conn) unparked(closing bool) bool {
	if c.raw == nil {
		return false
	}
	p := &idlePoller
	p.mu.Lock()
	if closing {
		c.noPark = true // the descriptor is about to close: never again
	}
	ok := c.parked
	if ok {
		p.removeLocked(c)
	}
	p.mu.Unlock()
	return ok
}

func (p *parker) removeLocked(c *Conn) {
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(c.fd), nil)
	delete(p.conns, c.fd)
	if c.parkIdx >= 0 {
		heap.Remove(&p.dl, c.parkIdx)
	}
	c.parked = false
}

func (p *parker) start() {
	p.epfd, p.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if p.err != nil {
		return
	}
	p.wake, p.err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if p.err != nil {
		return
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.wake)}
	if p.err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, p.wake, &ev); p.err != nil {
		return
	}
	p.conns = make(map[int32]*Conn)
	go p.loop()
}

// loop waits for parked sockets to become readable or their deadlines to
// pass, and resumes their readers.
func (p *parker) loop() {
	events := make([]unix.EpollEvent, 128)
	var ready []*Conn
	for {
		p.mu.Lock()
		timeout := -1
		if len(p.dl) > 0 {
			p.next = p.dl[0].parkDeadline
			timeout = int(time.Until(p.next)/time.Millisecond) + 1
			timeout = max(timeout, 0)
		} else {
			p.next = time.Time{}
		}
		p.mu.Unlock()
		n, err := unix.EpollWait(p.epfd, events, timeout)
		if err != nil && err != unix.EINTR {
			time.Sleep(10 * time.Millisecond) // should not happen; do not spin
		}
		p.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == p.wake {
				var b [8]byte
				unix.Read(p.wake, b[:])
				continue
			}
			if c := p.conns[ev.Fd]; c != nil {
				p.removeLocked(c)
				ready = append(ready, c)
			}
		}
		now := time.Now()
		for len(p.dl) > 0 && !p.dl[0].parkDeadline.After(now) {
			c := p.dl[0]
			p.removeLocked(c)
			ready = append(ready, c)
		}
		p.mu.Unlock()
		for i, c := range ready {
			ready[i] = nil
			go c.run()
		}
		ready = ready[:0]
	}
}

// deadlines is a min-heap of parked connections by read deadline.
type deadlines []*Conn

func (h deadlines) Len() int           { return len(h) }
func (h deadlines) Less(i, j int) bool { return h[i].parkDeadline.Before(h[j].parkDeadline) }
func (h deadlines) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].parkIdx, h[j].parkIdx = i, j
}
func (h *deadlines) Push(x any) {
	c := x.(*Conn)
	c.parkIdx = len(*h)
	*h = append(*h, c)
}
func (h *deadlines) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.parkIdx = -1
	return c
}
