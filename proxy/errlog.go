package proxy

import (
	"errors"
	"github.com/gproxy/gproxy/parser/syserr"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/upstream"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// Upstream failures go to the error log in nginx's words, at nginx's
// level ([error]), one line per failed attempt (a call retried on another
// peer logs each failure, as nginx does):
//
//	MESSAGE while ACTION, client: IP, server: NAME, request: "POST /pkg.Svc/M HTTP/2.0", upstream: "grpc://ADDR", host: "HOST"
//
// MESSAGE and ACTION are ngx_http_upstream's and ngx_http_grpc_module's
// (e.g. "connect() failed (111: Connection refused)" while "connecting to
// upstream"); system errors carry their errno and strerror text as nginx
// prints them. The whole text is the zap message, and the only field is
// "connection" (the client connection's number), from which the error
// log's encoder prints nginx's "PID#0: *CONN" prefix.

// nginx's log actions: what the request was doing when the error came.
const (
	actConnecting    = "connecting to upstream"
	actSending       = "sending request to upstream"
	actReadingHeader = "reading response header from upstream"
	actReading       = "reading upstream"
)

// nginx's messages without a variable part.
const (
	msgNoLive         = "no live upstreams"
	msgTimedOut       = "upstream timed out (110: Connection timed out)"
	msgPrematureConn  = "upstream prematurely closed connection"
	msgPrematureStrm  = "upstream prematurely closed stream"
	msgInvalidHeader  = "upstream sent invalid header"
	msgRespBodyLength = "upstream sent response body larger than indicated content length"
)

// errorLine is the text of one error log line about the call, with
// upstream naming the peer ("" for the group's name, as nginx prints for
// "no live upstreams").
func (c *call) errorLine(msg, action, upstream string) string {
	var b strings.Builder
	b.Grow(len(msg) + len(action) + len(c.path) + len(c.host) + 128)
	b.WriteString(msg)
	b.WriteString(" while ")
	b.WriteString(action)
	b.WriteString(", client: ")
	b.WriteString(clientIP(c.remote()))
	b.WriteString(", server: ")
	if c.server != nil && len(c.server.Names) > 0 {
		b.WriteString(c.server.Names[0].Name)
	}
	b.WriteString(`, request: "`)
	b.WriteString(c.method)
	b.WriteByte(' ')
	b.WriteString(c.path)
	b.WriteString(` HTTP/2.0", upstream: "`)
	b.WriteString(c.scheme())
	b.WriteString("://")
	if upstream == "" {
		upstream = c.group.Name
	}
	b.WriteString(upstream)
	b.WriteByte('"')
	if c.host != "" {
		b.WriteString(`, host: "`)
		b.WriteString(c.host)
		b.WriteByte('"')
	}
	return b.String()
}

// logError writes an error log line about the call; peer "" names the
// group.
func (c *call) logError(msg, action, peer string) {
	if c.conn == nil {
		return
	}
	c.conn.srv.log.Error(c.errorLine(msg, action, peer), zap.Uint64("connection", c.conn.id))
}

// remote is the client's address (the real one when realip found it);
// nil in tests without a connection.
func (c *call) remote() net.Addr {
	if c.realIP != nil {
		return c.realIP
	}
	if c.conn == nil {
		return nil
	}
	return c.conn.remote
}

// logAttempt writes the error log line of the current attempt's failure.
func (c *call) logAttempt(msg, action string) {
	c.logError(msg, action, c.peer.Addr)
}

func (c *call) scheme() string {
	if gp := c.loc.Config.GRPCPass; gp != nil && gp.Scheme != "" {
		return gp.Scheme
	}
	return "grpc"
}

// clientIP is nginx's $remote_addr: the address without the port.
func clientIP(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return ""
	case *net.UnixAddr:
		return "unix:"
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// dialMessage is nginx's message and action for a failed connect. gproxy's
// connect includes the HTTP/2 handshake (the server's SETTINGS): a
// connection the server closes during it is, for nginx, one that closed
// before the response header.
func dialMessage(err error) (msg, action string) {
	var de *upstream.DialError
	if errors.As(err, &de) && de.Timeout {
		return msgTimedOut, actConnecting
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return msgPrematureConn, actReadingHeader
	}
	if t := syserr.Suffix(err); t != "" {
		return "connect() failed" + t, actConnecting
	}
	return "connect() failed: " + rootMessage(err), actConnecting
}

// rootMessage strips Go's "dial tcp ...:" wrappers.
func rootMessage(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	return err.Error()
}

// streamMessage is nginx's message for an upstream stream that ended with
// err, and the grpc_next_upstream type it fails as. respStarted says the
// response header had arrived.
func streamMessage(err error, respStarted bool) (msg, ft string) {
	var se *h2.StreamError
	if !errors.As(err, &se) {
		return err.Error(), "error"
	}
	switch {
	case se.Conn:
		if se.Err == nil || errors.Is(se.Err, io.EOF) || errors.Is(se.Err, errEOF) {
			return msgPrematureConn, "error"
		}
		var ne net.Error
		if errors.As(se.Err, &ne) && ne.Timeout() {
			return msgTimedOut, "timeout"
		}
		if t := syserr.Suffix(se.Err); t != "" {
			return "recv() failed" + t, "error"
		}
		return msgPrematureConn, "error"
	case se.Remote:
		// nginx counts a reset before the response header as
		// invalid_header; a refused stream, never processed, stays an
		// error, which the default grpc_next_upstream retries.
		ft := "invalid_header"
		if se.Code == http2.ErrCodeRefusedStream {
			ft = "error"
		}
		return "upstream rejected request with error " + strconv.Itoa(int(se.Code)), ft
	case se.Code == http2.ErrCodeFlowControl:
		return "upstream violated stream flow control", "error"
	case se.Err != nil && strings.Contains(se.Err.Error(), "content-length"):
		return msgRespBodyLength, "error"
	case respStarted:
		return "upstream sent invalid trailer", "error"
	}
	return msgInvalidHeader, "invalid_header"
}
