package proxy

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/upstream"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Next upstream (grpc_next_upstream, _tries, _timeout), nginx's rules:
//
//   - A call goes to another peer only while nothing of the response has
//     reached the client, when grpc_next_upstream lists how the attempt
//     failed: error, timeout, invalid_header, http_500, http_502, http_503,
//     http_504, http_403, http_404, http_429.
//   - Every gRPC call is a POST, which nginx treats as non-idempotent (as
//     LOCK and PATCH): once the request was sent to a peer, it goes to the
//     next one only when grpc_next_upstream also lists non_idempotent. (nginx's own grpc
//     module never does, even then, because it does not keep the request
//     body; gproxy keeps up to maxReplay bytes of it and replays them.)
//   - A request the backend provably did not process counts as not sent:
//     RST_STREAM REFUSED_STREAM, a GOAWAY whose last stream id is below
//     the call's (RFC 9113 section 8.7), and, as a gproxy extension, a
//     trailers-only response with grpc-status 14 (UNAVAILABLE), which
//     counts as http_503.
//   - At most grpc_next_upstream_tries attempts (0: as many as the group
//     has peers that are not down; a single-peer group never retries) and
//     only while grpc_next_upstream_timeout has not passed since the call
//     started.
//
// The request for another attempt is the header list kept in fields and
// the DATA kept in sent, up to maxReplay bytes; a longer request stream
// gives up retrying once it is sent.

// maxReplay bounds the request bytes kept to replay on another peer: nginx's
// default client_body_buffer_size on 64-bit systems. Unary gRPC requests
// fit; longer request streams give up retrying rather than buffer without
// bound.
const maxReplay = 16 << 10

var replayPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxTries is how many peers a call may try: nginx's peer.tries, the
// number of peers not marked down, capped by grpc_next_upstream_tries; 1
// for a group of one peer.
func (c *call) maxTries() int {
	if c.group.Single() {
		return 1
	}
	n := c.group.Tries()
	if t := c.loc.Config.Settings.GRPC.NextUpstreamTries; t > 0 && t < n {
		n = t
	}
	return n
}

// nonIdempotent reports whether nginx treats method as non-idempotent
// (POST, LOCK, PATCH): once sent, such a request goes to another peer
// only with grpc_next_upstream non_idempotent.
func nonIdempotent(method string) bool {
	return method == "POST" || method == "LOCK" || method == "PATCH"
}

// nextUpstream reports whether grpc_next_upstream lists ft.
func (c *call) nextUpstream(ft string) bool {
	return slices.Contains(c.loc.Config.Settings.GRPC.NextUpstream, ft)
}

// mayRetry reports whether a call could ever go to another peer: it keeps
// a replay copy only then.
func (c *call) mayRetry() bool {
	nu := c.loc.Config.Settings.GRPC.NextUpstream
	return c.maxTries() > 1 && len(nu) > 0 && nu[0] != "off"
}

// retryLocked passes the call to the next peer after its attempt failed
// as ft ("error", "timeout", "invalid_header", "http_503", ...) with
// cause; unprocessed says the backend provably did not process it. It
// reports false, changing nothing, when the call may not or cannot be
// retried; the caller then fails it.
func (c *call) retryLocked(ft string, unprocessed bool, cause error) bool {
	st := &c.loc.Config.Settings.GRPC
	sent := c.up.Load() != nil && !unprocessed
	switch {
	case c.done || c.respStarted || !c.nextUpstream(ft) || c.tries >= c.maxTries():
		return false
	case st.NextUpstreamTimeout > 0 && time.Since(c.start) >= st.NextUpstreamTimeout:
		return false
	case sent && nonIdempotent(c.method) && !c.nextUpstream("non_idempotent"): // a POST already sent
		return false
	case c.up.Load() != nil && !c.replay: // request bytes sent are gone
		return false
	}
	now := time.Now()
	tried := append(c.tried, c.peer)
	next, err := c.group.PickNext(&upstream.StreamInfo{Start: now, RemoteAddr: c.remote(), Key: c.key}, tried)
	if err != nil {
		c.logError(msgNoLive, actConnecting, "")
		return false
	}
	if us := c.upstream(); us != nil {
		us.Reset(http2.ErrCodeCancel) // no-op when the peer ended it
	}
	c.reportLocked(cause, false, now)
	c.peer.Stats().Retried()
	c.tried = tried
	c.peer = next
	c.picked = now
	c.peerFailed = false
	if c.lg != nil {
		c.lg.upStatus = 0
		c.lg.connected = time.Time{}
	}
	c.tries++
	c.lastUp.Store(now.UnixNano()) // grpc_read_timeout counts per attempt
	if c.up.Load() != nil {
		c.up.Store(nil)
		c.pend = c.sent
		c.sent = nil
	}
	c.openLocked()
	return true
}

// keepSentLocked records request DATA given to the upstream stream for a
// possible replay, or gives up replaying beyond maxReplay.
func (c *call) keepSentLocked(p []byte) {
	if len(c.sent)+len(p) > maxReplay {
		c.commitLocked()
		return
	}
	if c.sent == nil && c.sentBuf == nil {
		c.sentBuf = replayPool.Get().(*[]byte)
		c.sent = (*c.sentBuf)[:0]
	}
	c.sent = append(c.sent, p...)
}

// commitLocked ends the chance of a retry: the response goes to the
// client (or the request outgrew maxReplay, or the call ended). The replay
// copy goes back to its pool.
func (c *call) commitLocked() {
	if !c.replay {
		return
	}
	c.replay = false
	c.fields = nil
	if c.sentBuf != nil && c.sent != nil && cap(c.sent) <= 2*maxReplay {
		*c.sentBuf = c.sent[:0]
		replayPool.Put(c.sentBuf)
	}
	c.sentBuf = nil
	c.sent = nil
}

// refused reports whether an upstream stream error proves that the
// backend did not process the stream (RFC 9113 section 8.7).
func refused(err error) bool {
	var se *h2.StreamError
	return errors.As(err, &se) && se.Remote && se.Code == http2.ErrCodeRefusedStream
}

// nextUpstreamStatus maps a response :status to its grpc_next_upstream
// type, and tells whether it counts as a failed attempt for max_fails
// (nginx: every one but 403 and 404).
var nextUpstreamStatus = map[string]struct {
	ft     string
	failed bool
}{
	"500": {"http_500", true}, "502": {"http_502", true}, "503": {"http_503", true},
	"504": {"http_504", true}, "429": {"http_429", true},
	"403": {"http_403", false}, "404": {"http_404", false},
}

// responseFailure classifies the first response header of an attempt:
// the grpc_next_upstream type it matches when grpc_next_upstream lists it
// ("" otherwise), whether it is a failed attempt for max_fails, and
// whether it proves the call unprocessed (a trailers-only UNAVAILABLE).
func (c *call) responseFailure(status string, end bool, fields []hpack.HeaderField) (ft string, failed, unprocessed bool) {
	if status == "200" {
		if end && headerValue(fields, "grpc-status") == "14" && c.nextUpstream("http_503") {
			return "http_503", true, true
		}
		return "", false, false
	}
	if m, ok := nextUpstreamStatus[status]; ok && c.nextUpstream(m.ft) {
		return m.ft, m.failed, false
	}
	return "", false, false
}
