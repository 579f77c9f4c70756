package h2

import (
	"encoding/binary"
	"io"

	"golang.org/x/net/http2"
)

// Frames from clients may be larger than 16 KiB. nginx advertises
// SETTINGS_MAX_FRAME_SIZE 2^24-1, and clients written against it send a
// whole request body or header block in one frame (nginx's own test
// client does). gproxy advertises as much as such a frame can usefully
// be (maxFrameSize): a DATA frame beyond the stream window would break
// flow control anyway, and a header block beyond the header list limit is
// refused anyway. The Framer, though, reads each frame whole into one
// buffer before anything checks it, so a large limit there would let one
// frame header pin that much per connection. A splitter between the
// reader and a Server-role Framer therefore passes a large DATA frame on
// as several DATA frames and a large HEADERS or CONTINUATION frame as
// HEADERS and CONTINUATION frames, none over 16 KiB, with the same stream,
// data, header block, END_STREAM and END_HEADERS, and for DATA the same
// length counted against flow control (RFC 9113 6.9.1): the padding goes
// in the last piece. HEADERS padding, which flow control does not count,
// is dropped. Unknown frame types over 16 KiB are skipped, as RFC 9113
// 5.5 lets a receiver ignore them. Other frames over 16 KiB reach the
// Framer whole and fail FRAME_SIZE_ERROR (their sizes are fixed or
// small), as does any frame over the advertised size (RFC 9113 4.2).

// maxFrameSize is the SETTINGS_MAX_FRAME_SIZE a Server-role connection
// with lim advertises: the larger of the stream window and the header
// list limit, at least the protocol's 16 KiB, at most its 2^24-1.
func maxFrameSize(lim Limits) uint32 {
	n := max(uint32(lim.StreamWindow), lim.MaxHeaderListSize, initialMaxFrameSize)
	return min(n, 1<<24-1)
}

// splitter implements io.Reader over src, producing the frame stream the
// Framer reads.
type splitter struct {
	src io.Reader
	max uint32 // the advertised SETTINGS_MAX_FRAME_SIZE

	out        [10]byte // synthesized bytes to emit: a frame header and maybe a pad length
	outR, outW int
	copyLeft   uint32 // bytes of the current (sub-)frame to pass from src
	skipLeft   uint32 // bytes to discard from src (HEADERS padding, unknown frames)

	// The large frame being split, while splitting.
	splitting bool
	typ       http2.FrameType // DATA, HEADERS (next piece is the first) or CONTINUATION
	flags     http2.Flags     // the source frame's
	stream    uint32
	left      uint32 // data or header block bytes not yet in a piece
	padded    bool   // DATA: the last piece carries the padding
	padLen    uint32
	prioLen   uint32 // HEADERS: the 5 priority bytes go in the first piece

	hdr [9]byte
	one [1]byte

	// Empty CONTINUATION frames without END_HEADERS carry nothing: each
	// is a glitch, as in HAProxy, and maxEmpty of them (the connection's
	// MaxGlitches) end the connection (errGlitches), long before nginx's
	// flood rule would (8 MiB of frames); a header block never needs one.
	empty, maxEmpty int
}

func (s *splitter) Read(p []byte) (int, error) {
	for {
		switch {
		case s.outR < s.outW:
			n := copy(p, s.out[s.outR:s.outW])
			s.outR += n
			return n, nil
		case s.copyLeft > 0:
			if uint32(len(p)) > s.copyLeft {
				p = p[:s.copyLeft]
			}
			n, err := s.src.Read(p)
			s.copyLeft -= uint32(n)
			return n, err
		case s.skipLeft > 0:
			q := p
			if uint32(len(q)) > s.skipLeft {
				q = q[:s.skipLeft]
			}
			n, err := s.src.Read(q) // p is scratch: nothing of it is returned
			s.skipLeft -= uint32(n)
			if err != nil {
				return 0, err
			}
		case s.splitting:
			s.nextPiece()
		default:
			if err := s.nextFrame(); err != nil {
				return 0, err
			}
		}
	}
}

// between reports whether the splitter is between source frames: what it
// has passed on ends where a source frame ends.
func (s *splitter) between() bool {
	return s.outR == s.outW && s.copyLeft == 0 && s.skipLeft == 0 && !s.splitting
}

// nextFrame reads the next frame header from src and plans how the frame
// is passed on.
func (s *splitter) nextFrame() error {
	if _, err := io.ReadFull(s.src, s.hdr[:]); err != nil {
		return err
	}
	length := uint32(s.hdr[0])<<16 | uint32(s.hdr[1])<<8 | uint32(s.hdr[2])
	typ, flags := http2.FrameType(s.hdr[3]), http2.Flags(s.hdr[4])
	if length > s.max {
		return http2.ConnectionError(http2.ErrCodeFrameSize)
	}
	if typ == http2.FrameContinuation && length == 0 && !flags.Has(http2.FlagContinuationEndHeaders) {
		if s.empty++; s.maxEmpty > 0 && s.empty >= s.maxEmpty {
			return errGlitches
		}
	}
	if length <= initialMaxFrameSize || typ != http2.FrameData && typ != http2.FrameHeaders && typ != http2.FrameContinuation {
		if length > initialMaxFrameSize && typ > http2.FrameContinuation {
			s.skipLeft = length // an unknown type: ignored
			return nil
		}
		s.outW = copy(s.out[:], s.hdr[:])
		s.outR = 0
		s.copyLeft = length
		return nil
	}
	s.typ, s.flags = typ, flags
	s.stream = binary.BigEndian.Uint32(s.hdr[5:]) & (1<<31 - 1)
	s.left, s.padLen, s.prioLen, s.padded = length, 0, 0, false
	if typ != http2.FrameContinuation && flags.Has(http2.FlagDataPadded) { // the same bit for HEADERS
		if _, err := io.ReadFull(s.src, s.one[:]); err != nil {
			return err
		}
		s.padLen = uint32(s.one[0])
		s.left--
		s.padded = true
	}
	if typ == http2.FrameHeaders && flags.Has(http2.FlagHeadersPriority) {
		s.prioLen = 5
	}
	if s.padLen+s.prioLen > s.left {
		return http2.ConnectionError(http2.ErrCodeProtocol) // padding longer than the frame
	}
	s.left -= s.padLen + s.prioLen
	s.splitting = true
	return nil
}

// nextPiece emits the header of the next piece of the frame being split.
func (s *splitter) nextPiece() {
	const max = initialMaxFrameSize
	switch s.typ {
	case http2.FrameData:
		if s.padded && s.left+1+s.padLen <= max {
			// The last piece: the data left, then the padding.
			s.header(1+s.left+s.padLen, http2.FrameData, http2.FlagDataPadded|s.flags&http2.FlagDataEndStream)
			s.out[s.outW] = byte(s.padLen)
			s.outW++
			s.copyLeft = s.left + s.padLen
			s.splitting = false
			return
		}
		if !s.padded && s.left <= max {
			s.header(s.left, http2.FrameData, s.flags&http2.FlagDataEndStream)
			s.copyLeft = s.left
			s.splitting = false
			return
		}
		n := min(s.left, max)
		s.header(n, http2.FrameData, 0)
		s.copyLeft = n
		s.left -= n
	case http2.FrameHeaders:
		n := min(s.left, max-s.prioLen)
		fl := s.flags & (http2.FlagHeadersEndStream | http2.FlagHeadersPriority)
		if n == s.left {
			fl |= s.flags & http2.FlagHeadersEndHeaders
			s.endHeaderBlock()
		}
		s.header(s.prioLen+n, http2.FrameHeaders, fl)
		s.copyLeft = s.prioLen + n
		s.left -= n
		s.typ = http2.FrameContinuation
	case http2.FrameContinuation:
		n := min(s.left, max)
		var fl http2.Flags
		if n == s.left {
			fl = s.flags & http2.FlagContinuationEndHeaders
			s.endHeaderBlock()
		}
		s.header(n, http2.FrameContinuation, fl)
		s.copyLeft = n
		s.left -= n
	}
}

// endHeaderBlock: the piece being planned is the source frame's last; its
// padding (HEADERS only) is dropped after it.
func (s *splitter) endHeaderBlock() {
	s.splitting = false
	s.skipLeft = s.padLen
}

// header queues a frame header.
func (s *splitter) header(length uint32, typ http2.FrameType, flags http2.Flags) {
	s.out[0], s.out[1], s.out[2] = byte(length>>16), byte(length>>8), byte(length)
	s.out[3], s.out[4] = byte(typ), byte(flags)
	binary.BigEndian.PutUint32(s.out[5:9], s.stream)
	s.outR, s.outW = 0, 9
}
