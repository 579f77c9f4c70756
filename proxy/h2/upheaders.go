package h2

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A Client-role connection (an upstream) decodes its header blocks itself
// instead of letting the Framer do it, for one leniency nginx grants its
// backends: a Huffman string padded with a whole byte or more of EOS bits.
// RFC 7541 5.2 makes such padding a decoding error and hpack enforces it,
// but nginx's decoder takes it, so backends that pad that way (nginx's own
// test backend does, whenever a string's code ends on a byte boundary) work
// behind nginx and must work behind gproxy. Clients get no such leniency:
// the Framer decodes their blocks strictly (h2spec hpack/5.2).
type blockReader struct {
	dec  *hpack.Decoder
	hf   *http2.HeadersFrame // the HEADERS frame that opened the block
	frag []byte              // the block so far, while CONTINUATION frames follow
}

// next takes each frame the Framer read. HEADERS and CONTINUATION frames
// are gathered into a header block; next returns nil until the block is
// complete, then its *http2.MetaHeadersFrame. Other frames pass through.
// The errors are the Framer's: ConnectionError(COMPRESSION_ERROR) for a
// block that does not decode, ConnectionError(PROTOCOL_ERROR) for one far
// over maxList, StreamError(PROTOCOL_ERROR) for malformed fields.
func (b *blockReader) next(f http2.Frame, maxList uint32) (http2.Frame, error) {
	var frag []byte
	switch f := f.(type) {
	case *http2.HeadersFrame:
		if !f.HeadersEnded() {
			b.hf = f
			b.frag = append(b.frag[:0], f.HeaderBlockFragment()...)
			return nil, b.checkSize(maxList)
		}
		b.hf, frag = f, f.HeaderBlockFragment()
	case *http2.ContinuationFrame:
		// The Framer has checked that it continues b.hf's block (RFC 9113
		// 6.10).
		b.frag = append(b.frag, f.HeaderBlockFragment()...)
		if err := b.checkSize(maxList); err != nil {
			return nil, err
		}
		if !f.HeadersEnded() {
			return nil, nil
		}
		frag = b.frag
	default:
		return f, nil
	}
	hf := b.hf
	b.hf = nil
	mh, err := b.decode(hf, trimPadding(frag), maxList)
	if cap(b.frag) > 64<<10 {
		b.frag = nil // a rare large block: do not keep its buffer
	}
	b.frag = b.frag[:0]
	return mh, err
}

// checkSize stops a block whose encoded size is over twice the list limit,
// as the Framer does: it could only be discarded after costly decoding.
func (b *blockReader) checkSize(maxList uint32) error {
	if int64(len(b.frag)) > 2*int64(maxList) {
		b.hf, b.frag = nil, b.frag[:0]
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil
}

// decode decodes one whole header block with the checks the Framer makes
// (RFC 9113 8.2 field names and values, 8.3 pseudo-header fields).
func (b *blockReader) decode(hf *http2.HeadersFrame, block []byte, maxList uint32) (*http2.MetaHeadersFrame, error) {
	mh := &http2.MetaHeadersFrame{HeadersFrame: hf}
	remain := maxList
	var invalid error
	sawRegular := false
	b.dec.SetEmitEnabled(true)
	b.dec.SetMaxStringLength(int(maxList))
	b.dec.SetEmitFunc(func(f hpack.HeaderField) {
		switch {
		case !httpguts.ValidHeaderFieldValue(f.Value):
			invalid = fmt.Errorf("h2: invalid value in header %q", f.Name)
		case strings.HasPrefix(f.Name, ":"):
			if sawRegular {
				invalid = errors.New("h2: pseudo-header field after a regular one")
			}
		default:
			sawRegular = true
			if !validFieldName(f.Name) {
				invalid = fmt.Errorf("h2: invalid header name %q", f.Name)
			}
		}
		if invalid != nil {
			b.dec.SetEmitEnabled(false)
			return
		}
		if f.Size() > remain {
			b.dec.SetEmitEnabled(false)
			mh.Truncated = true
			return
		}
		remain -= f.Size()
		mh.Fields = append(mh.Fields, f)
	})
	defer b.dec.SetEmitFunc(func(hpack.HeaderField) {})
	if _, err := b.dec.Write(block); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if err := b.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if invalid == nil {
		invalid = checkPseudos(mh.PseudoFields())
	}
	if invalid != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: invalid}
	}
	return mh, nil
}

// validFieldName: a token with no upper case (RFC 9113 8.2.1).
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !httpguts.IsTokenRune(r) || 'A' <= r && r <= 'Z' {
			return false
		}
	}
	return true
}

// checkPseudos: known pseudo-headers, none twice, not request and response
// ones mixed (RFC 9113 8.3).
func checkPseudos(pf []hpack.HeaderField) error {
	var request, response bool
	for i, f := range pf {
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return fmt.Errorf("h2: invalid pseudo-header %q", f.Name)
		}
		for _, g := range pf[:i] {
			if g.Name == f.Name {
				return fmt.Errorf("h2: duplicate pseudo-header %q", f.Name)
			}
		}
	}
	if request && response {
		return errors.New("h2: request and response pseudo-headers mixed")
	}
	return nil
}

// trimPadding returns block with each Huffman string literal's overlong
// padding removed: up to three trailing 0xff bytes (whole bytes of EOS
// bits; a fourth would hold the whole 30-bit EOS code, which nginx rejects
// too) are dropped while the string does not decode. block is returned
// as is, without copying, when no string needs it; only strings ending in
// 0xff are checked, so the common case costs one pass over the lengths.
// A block that cannot be walked is returned as is for the decoder to
// reject.
func trimPadding(block []byte) []byte {
	var out []byte // nil until a string is trimmed
	done := 0      // block[:done] is already in out
	for p := 0; p < len(block); {
		c := block[p]
		var strs int // string literals that follow the representation's integer
		var prefix uint8
		switch {
		case c&0x80 != 0: // indexed field (6.1)
			prefix = 7
		case c&0xc0 == 0x40: // literal with incremental indexing (6.2.1)
			prefix, strs = 6, 1
		case c&0xe0 == 0x20: // dynamic table size update (6.3)
			prefix = 5
		default: // literal without indexing or never indexed (6.2.2, 6.2.3)
			prefix, strs = 4, 1
		}
		idx, n, ok := readInt(block[p:], prefix)
		if !ok {
			return block
		}
		p += n
		if strs == 1 && idx == 0 {
			strs = 2 // a new name, then the value
		}
		for ; strs > 0; strs-- {
			if p >= len(block) {
				return block
			}
			huff := block[p]&0x80 != 0
			l, n, ok := readInt(block[p:], 7)
			if !ok || l > uint64(len(block)-p-n) {
				return block
			}
			s := block[p+n : p+n+int(l)]
			if huff && len(s) > 0 && s[len(s)-1] == 0xff {
				if t := trimHuffman(s); len(t) < len(s) {
					out = append(out, block[done:p]...)
					out = appendString(out, t)
					done = p + n + int(l)
				}
			}
			p += n + int(l)
		}
	}
	if out == nil {
		return block
	}
	return append(out, block[done:]...)
}

// trimHuffman drops up to three trailing 0xff bytes from s while it does
// not decode; it returns s itself when trimming does not help.
func trimHuffman(s []byte) []byte {
	if _, err := hpack.HuffmanDecodeToString(s); err == nil {
		return s
	}
	for t := s; len(t) > 0 && len(s)-len(t) < 3 && t[len(t)-1] == 0xff; {
		t = t[:len(t)-1]
		if _, err := hpack.HuffmanDecodeToString(t); err == nil {
			return t
		}
	}
	return s
}

// readInt decodes an HPACK integer with an n-bit prefix (RFC 7541 5.1),
// returning its value and length; ok is false if b ends first or the value
// is absurd.
func readInt(b []byte, n uint8) (v uint64, size int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	max := uint64(1)<<n - 1
	v = uint64(b[0]) & max
	if v < max {
		return v, 1, true
	}
	var m uint
	for i := 1; i < len(b); i++ {
		v += uint64(b[i]&0x7f) << m
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
		if m += 7; m > 56 {
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// appendString appends a Huffman string literal holding s (RFC 7541 5.2).
func appendString(dst, s []byte) []byte {
	l := uint64(len(s))
	if l < 0x7f {
		dst = append(dst, 0x80|byte(l))
	} else {
		dst = append(dst, 0xff)
		for l -= 0x7f; l >= 0x80; l >>= 7 {
			dst = append(dst, byte(l)|0x80)
		}
		dst = append(dst, byte(l))
	}
	return append(dst, s...)
}
