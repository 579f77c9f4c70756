// Package h2 is gproxy's HTTP/2 codec: frames in and out of one connection,
// stream state, flow-control accounting, HPACK, write coalescing and every
// per-connection limit. Both sides of the proxy use it: client connections
// (Server role) and multiplexed upstream connections (Client role). It knows
// nothing about routing, gRPC or upstream groups; those sit above it and
// talk to it through Handler interfaces.
//
// Threading model: each Conn has at most one reader goroutine at a time
// (Start), which calls the handlers, and at most one writer goroutine,
// started when output is queued and exiting when the output buffer is
// empty. While the connection is idle its reader is parked (no goroutine
// on Linux sockets, a fresh shallow one otherwise) and it holds no
// buffers. Streams have no goroutines. All
// stream and connection state is guarded by the Conn's mutex; handlers are
// always called without it held, so a handler may write to other
// connections freely.
package h2

import "time"

// Limits are the per-connection and per-stream limits of the codec, in one
// place, with nginx's names and defaults where nginx has them.
type Limits struct {
	// MaxConcurrentStreams is http2_max_concurrent_streams (nginx: 128):
	// the SETTINGS_MAX_CONCURRENT_STREAMS we advertise. New streams beyond
	// it are refused with REFUSED_STREAM.
	MaxConcurrentStreams uint32

	// ChunkSize is http2_chunk_size (nginx: 8k): the largest DATA frame we
	// send, further capped by the peer's SETTINGS_MAX_FRAME_SIZE.
	ChunkSize int

	// MaxHeaderListSize bounds a decoded header block (the advertised
	// SETTINGS_MAX_HEADER_LIST_SIZE): large_client_header_buffers
	// number*size (nginx: 4*8k) on client connections.
	MaxHeaderListSize uint32

	// StreamWindow is the receive window we advertise per stream (nginx's
	// http2_body_preread_size, 64k). Stream-level credit is returned only
	// when the handler has passed the data on (Stream.Credit), so it is
	// also the bound on data buffered per stream.
	StreamWindow int32

	// ConnWindow is the connection receive window we advertise. It is
	// credited back as data is read: the buffering bound comes from the
	// stream windows (MaxConcurrentStreams * StreamWindow per connection).
	ConnWindow int32

	// MaxOutBuffer bounds pending output: queued DATA is framed into the
	// connection's output buffer only while it holds less than this, the
	// rest waits in its stream (bounded by the window the source was
	// given). Control frames always go in; if output exceeds
	// 16*MaxOutBuffer the peer is not reading and the connection is
	// closed.
	MaxOutBuffer int

	// WriteTimeout bounds one write to the socket (send_timeout,
	// grpc_send_timeout; nginx: 60s). 0 means none.
	WriteTimeout time.Duration

	// HeaderTimeout closes a Server-role connection whose peer stopped
	// in the middle of a frame for this long (client_header_timeout,
	// which replaced nginx's http2_recv_timeout; 60s). The check runs at
	// the connection's read-deadline ticks, so it fires between one and
	// two times the value. 0 means none.
	HeaderTimeout time.Duration

	// BodyTimeout resets, with CANCEL, a stream whose peer has sent no
	// DATA for this long while its request is unfinished
	// (client_body_timeout; 60s); checked like HeaderTimeout. 0 means
	// none.
	BodyTimeout time.Duration

	// IdleTimeout closes the connection after this long without streams
	// (keepalive_timeout: 75s on client connections, upstream
	// keepalive_timeout 60s on upstream ones). 0 means never.
	IdleTimeout time.Duration
	// CloseIdle (Client role) closes the connection as soon as it has no
	// stream: an upstream without `keepalive`, where nginx keeps no idle
	// connection. Streams open together still share it.
	CloseIdle bool

	// PingInterval, if set, sends a PING after this long without any frame
	// from the peer while streams are open, and the connection closes if
	// nothing arrives within PingTimeout of it (used on upstream
	// connections). Both are measured in time since the last frame and
	// since the PING, at read-deadline granularity, never in numbers of
	// deadlines. No PING goes out on a connection without streams: gRPC
	// servers count those against the client (grpc-go closes the
	// connection with ENHANCE_YOUR_CALM "too_many_pings" after three).
	PingInterval time.Duration
	// PingTimeout is how long a PING may go unanswered; 0 means
	// PingInterval.
	PingTimeout time.Duration

	// MaxRequests is keepalive_requests: after this many streams a server
	// connection sends GOAWAY, and a client connection stops opening
	// streams; either closes once its streams finish. 0 means unlimited.
	MaxRequests int

	// MaxGlitches is how many "glitches" a Server-role connection may
	// cause before it is closed with GOAWAY ENHANCE_YOUR_CALM: streams the
	// peer resets before their response ended, refused or malformed
	// request header blocks, empty DATA frames, stream-level protocol
	// errors (HAProxy's tune.h2.fe.glitches-threshold idea). Each stream
	// that completes normally takes one back. 0 means DefaultLimits'.
	MaxGlitches int

	// MaxControlBacklog bounds the output a Server-role connection
	// queues while its peer does not read. Past it the connection stops
	// reading from the peer, as HAProxy stops reading when it cannot
	// write: a peer flooding frames that need an answer (SETTINGS and
	// PING ACKs, RST_STREAM) waits in its own TCP window and costs no
	// CPU. If the backlog has not fallen back under the bound within
	// BacklogWait, or frames already read take it to twice the bound,
	// the connection is closed (GOAWAY ENHANCE_YOUR_CALM). nginx's
	// equivalent is its limit of 10,000 queued frames.
	MaxControlBacklog int

	// BacklogWait is how long a Server-role connection past
	// MaxControlBacklog waits for its peer to read before it is closed.
	BacklogWait time.Duration

	// ReadBufferSize is the size of the read buffer a connection borrows
	// from a pool while it has input to parse; an idle connection holds
	// none. Large frame payloads bypass it, so it can stay small.
	ReadBufferSize int
}

// DefaultLimits returns nginx's defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxConcurrentStreams: 128,
		ChunkSize:            8 << 10,
		MaxHeaderListSize:    4 * 8 << 10,
		StreamWindow:         64 << 10,
		ConnWindow:           1 << 20,
		MaxOutBuffer:         64 << 10,
		WriteTimeout:         60 * time.Second,
		IdleTimeout:          75 * time.Second,
		MaxRequests:          1000,
		ReadBufferSize:       4 << 10,
		MaxGlitches:          100,
		MaxControlBacklog:    256 << 10,
		BacklogWait:          time.Second,
	}
}

// withDefaults fills zero fields that must not be zero.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = d.MaxConcurrentStreams
	}
	if l.ChunkSize <= 0 {
		l.ChunkSize = d.ChunkSize
	}
	if l.MaxHeaderListSize == 0 {
		l.MaxHeaderListSize = d.MaxHeaderListSize
	}
	if l.StreamWindow <= 0 {
		l.StreamWindow = d.StreamWindow
	}
	if l.ConnWindow < 65535 {
		l.ConnWindow = 65535
	}
	if l.MaxOutBuffer <= 0 {
		l.MaxOutBuffer = d.MaxOutBuffer
	}
	if l.MaxGlitches <= 0 {
		l.MaxGlitches = d.MaxGlitches
	}
	if l.BacklogWait <= 0 {
		l.BacklogWait = d.BacklogWait
	}
	if l.MaxControlBacklog <= 0 {
		l.MaxControlBacklog = d.MaxControlBacklog
	}
	if l.ReadBufferSize < 1024 {
		l.ReadBufferSize = d.ReadBufferSize
	}
	return l
}
