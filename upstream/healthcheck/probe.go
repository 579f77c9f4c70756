// Package healthcheck runs NGINX Plus's active gRPC health checks
// (`health_check type=grpc`, ngx_http_upstream_hc_module): every interval=
// it calls grpc.health.v1.Health/Check on each server of a group, and after
// fails= consecutive failures reports the server unhealthy, after passes=
// consecutive successes healthy again. A check fails on any connection or
// protocol error, a timeout, a grpc-status other than OK (unless it is the
// grpc_status= that counts as healthy), or a status other than SERVING.
//
// The checker knows no group: it reads the current targets from a function
// each round and reports changes of health through a callback, so the
// group that owns the peers (and DNS that changes them) stays in charge.
package healthcheck

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"github.com/gproxy/gproxy/parser/syserr"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/protobuf/encoding/protowire"
)

// ServingStatus is grpc.health.v1.HealthCheckResponse.ServingStatus.
type ServingStatus int

// Serving statuses of the gRPC health checking protocol.
const (
	Unknown        ServingStatus = 0
	Serving        ServingStatus = 1
	NotServing     ServingStatus = 2
	ServiceUnknown ServingStatus = 3
)

func (s ServingStatus) String() string {
	switch s {
	case Unknown:
		return "UNKNOWN"
	case Serving:
		return "SERVING"
	case NotServing:
		return "NOT_SERVING"
	case ServiceUnknown:
		return "SERVICE_UNKNOWN"
	}
	return strconv.Itoa(int(s))
}

// Probe is one health check request.
type Probe struct {
	Network, Addr string // "tcp" and "host:port", or "unix" and a path
	// Service is HealthCheckRequest.service ("" for the whole server).
	Service string
	// OKStatus is a non-zero grpc-status that counts as healthy
	// (grpc_status=); -1 for none.
	OKStatus int
	// ConnectTimeout bounds the connection, ReadTimeout the answer (the
	// location's grpc_connect_timeout and grpc_read_timeout).
	ConnectTimeout, ReadTimeout time.Duration
	// Dial replaces the plain dialer: a TLS dialer for grpcs://, which
	// must also set Secure; nil uses net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Secure says Dial's connections are TLS (:scheme https).
	Secure bool
}

// Run performs the check on a connection of its own, closed afterwards (a
// check over a fresh connection also proves the server still accepts).
// nil means healthy; the error says why not, in the shape of an error log
// line's cause.
func (p *Probe) Run(ctx context.Context) error {
	dial := p.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	cctx, cancel := context.WithTimeout(ctx, orDefault(p.ConnectTimeout))
	nc, err := dial(cctx, p.Network, p.Addr)
	timedOut := cctx.Err() != nil
	cancel()
	if err != nil {
		if timedOut {
			return &CheckError{msgTimedOut, actConnecting, err}
		}
		return &CheckError{"connect() failed" + syserr.Suffix(err), actConnecting, err}
	}
	defer nc.Close()
	rctx, cancel := context.WithTimeout(ctx, orDefault(p.ReadTimeout))
	defer cancel()
	// The deadline also covers the preface and SETTINGS exchange.
	if d, ok := rctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	tr := &http2.Transport{
		AllowHTTP: true, // h2c prior knowledge, as grpc_pass grpc:// (TLS is Dial's)
		DialTLSContext: func(context.Context, string, string, *tls.Config) (net.Conn, error) {
			return nil, errors.New("healthcheck: no second connection")
		},
	}
	cc, err := tr.NewClientConn(nc)
	if err != nil {
		return &CheckError{"upstream prematurely closed connection", actReadingHeader, err}
	}
	defer cc.Close()
	scheme := "http://"
	if p.Secure {
		scheme = "https://"
	}
	req, _ := http.NewRequestWithContext(rctx, http.MethodPost,
		scheme+authority(p)+"/grpc.health.v1.Health/Check", bytes.NewReader(request(p.Service)))
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	req.Header.Set("user-agent", "gproxy-health-check")
	res, err := cc.RoundTrip(req)
	if err != nil {
		if rctx.Err() != nil {
			return &CheckError{msgTimedOut, actReadingHeader, err}
		}
		return &CheckError{"upstream prematurely closed connection" + syserr.Suffix(err), actReadingHeader, err}
	}
	defer res.Body.Close()
	// One HealthCheckResponse is a few bytes; more is not a health server.
	body, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	if err != nil {
		if rctx.Err() != nil {
			return &CheckError{msgTimedOut, actReading, err}
		}
		return &CheckError{"upstream prematurely closed stream", actReading, err}
	}
	if res.StatusCode != http.StatusOK {
		return &CheckError{"upstream answered HTTP status " + strconv.Itoa(res.StatusCode), actChecking, nil}
	}
	code := res.Trailer.Get("grpc-status")
	if code == "" {
		code = res.Header.Get("grpc-status") // trailers-only
	}
	st, err := strconv.Atoi(code)
	if err != nil {
		return &CheckError{"upstream sent no grpc-status", actChecking, nil}
	}
	if st != 0 {
		if st == p.OKStatus {
			return nil
		}
		return &CheckError{"upstream answered grpc-status " + strconv.Itoa(st), actChecking, nil}
	}
	s, err := response(body)
	if err != nil {
		return &CheckError{"upstream sent " + err.Error(), actChecking, err}
	}
	if s != Serving {
		return &CheckError{"upstream answered " + s.String(), actChecking, nil}
	}
	return nil
}

// CheckError is why a check failed, in the shape of nginx's error log:
// Msg "while" Action ("connect() failed (111: Connection refused) while
// connecting to upstream").
type CheckError struct {
	Msg, Action string
	Err         error // the underlying error, if any
}

func (e *CheckError) Error() string { return e.Msg + " while " + e.Action }

func (e *CheckError) Unwrap() error { return e.Err }

// nginx's log actions and messages, and the check's own.
const (
	actConnecting    = "connecting to upstream"
	actReadingHeader = "reading response header from upstream"
	actReading       = "reading upstream"
	actChecking      = "checking gRPC health"
	msgTimedOut      = "upstream timed out (110: Connection timed out)"
)

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return 60 * time.Second // nginx's grpc_connect_timeout/grpc_read_timeout
	}
	return d
}

func authority(p *Probe) string {
	if p.Network == "unix" {
		return "localhost"
	}
	return p.Addr
}

// request is a length-prefixed gRPC message holding
// HealthCheckRequest{service: 1}.
func request(service string) []byte {
	var msg []byte
	if service != "" {
		msg = protowire.AppendTag(msg, 1, protowire.BytesType)
		msg = protowire.AppendString(msg, service)
	}
	out := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

// response reads the status of one length-prefixed, uncompressed
// HealthCheckResponse{status: 1}.
func response(b []byte) (ServingStatus, error) {
	if len(b) < 5 {
		return 0, errors.New("no HealthCheckResponse")
	}
	if b[0] != 0 {
		return 0, errors.New("compressed HealthCheckResponse")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	msg := b[5:]
	if uint32(len(msg)) < n {
		return 0, errors.New("short HealthCheckResponse")
	}
	msg = msg[:n]
	status := Unknown
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return 0, errors.New("bad HealthCheckResponse")
		}
		msg = msg[l:]
		if num == 1 && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(msg)
			if l < 0 {
				return 0, errors.New("bad HealthCheckResponse")
			}
			status = ServingStatus(v)
			msg = msg[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, msg)
		if l < 0 {
			return 0, errors.New("bad HealthCheckResponse")
		}
		msg = msg[l:]
	}
	return status, nil
}
