package proxy

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
	"net"
)

// FuzzHeaderReencoding feeds an arbitrary HPACK header block through what
// the codec lets pass (HPACK decoding with the header list limit, field
// validity) and then through upstreamRequest and clientResponse with the
// locations of testdata/grpc-settings.conf (grpc_set_header,
// grpc_hide_header). What comes out must re-encode and decode to itself,
// with valid lowercase names, the four request pseudo-headers first and
// once each, and no hop-by-hop or hidden header.
func FuzzHeaderReencoding(f *testing.F) {
	path := filepath.Join("..", "testdata", "grpc-settings.conf")
	text, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	cfg, _, err := parser.LoadBytes(path, text, parser.Options{Prefix: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	tbl, err := route.New(cfg.HTTP)
	if err != nil {
		f.Fatal(err)
	}
	lst := tbl.Listeners()[0]
	// Seeds: request header blocks as a gRPC client sends them.
	for _, fields := range [][]hpack.HeaderField{
		{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: "/pkg.Svc/Call"},
			{Name: ":authority", Value: "a"}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}},
		{{Name: ":method", Value: "POST"}, {Name: ":path", Value: "/stream/x"}, {Name: "connection", Value: "close"},
			{Name: "x-forwarded-for", Value: "10.0.0.1"}, {Name: "x-powered-by", Value: "php"}, {Name: "host", Value: "h"}},
	} {
		var b bytes.Buffer
		e := hpack.NewEncoder(&b)
		for _, hf := range fields {
			e.WriteField(hf)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		var fields []hpack.HeaderField
		size := 0
		d := hpack.NewDecoder(4096, func(hf hpack.HeaderField) {
			size += int(hf.Size())
			fields = append(fields, hf)
		})
		d.SetMaxStringLength(32 << 10)
		if _, err := d.Write(block); err != nil || d.Close() != nil || size > 32<<10 {
			return
		}
		for _, hf := range fields {
			if !httpguts.ValidHeaderFieldValue(hf.Value) || !hf.IsPseudo() && !validName(hf.Name) {
				return // the Framer refuses these
			}
		}
		r := &route.Request{Method: "POST", Scheme: "http", Path: "/", Headers: fields,
			RemoteAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:1234")),
			LocalAddr:  net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:30051"))}
		for _, hf := range fields {
			switch hf.Name {
			case ":path":
				r.Path = hf.Value
			case ":authority":
				r.Authority = hf.Value
			}
		}
		_, loc, act := tbl.Route(lst, r)
		if act != nil || loc == nil {
			return
		}
		up := upstreamRequest(nil, fields, "http", "backend", loc, tbl, r)
		checkFields(t, up, true, nil)
		resp := clientResponse(fields, loc.HideResponse)
		checkFields(t, resp, false, loc.HideResponse)
	})
}

// validName is an HTTP/2 field name as the Framer accepts it: a token in
// lowercase.
func validName(name string) bool {
	return httpguts.ValidHeaderFieldName(name) && strings.ToLower(name) == name
}

func checkFields(t *testing.T, fields []hpack.HeaderField, request bool, hide map[string]bool) {
	t.Helper()
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for _, hf := range fields {
		if err := e.WriteField(hf); err != nil {
			t.Fatalf("encode %q: %v", hf, err)
		}
	}
	got, err := hpack.NewDecoder(4096, nil).DecodeFull(b.Bytes())
	if err != nil {
		t.Fatalf("re-decoding: %v", err)
	}
	if len(got) != len(fields) {
		t.Fatalf("round trip: %d fields, want %d", len(got), len(fields))
	}
	pseudo := map[string]int{}
	for i, hf := range got {
		if hf.Name != fields[i].Name || hf.Value != fields[i].Value {
			t.Fatalf("round trip: field %d is %q, want %q", i, hf, fields[i])
		}
		if !httpguts.ValidHeaderFieldValue(hf.Value) {
			t.Fatalf("invalid value in %q", hf)
		}
		if hf.IsPseudo() {
			pseudo[hf.Name]++
			if request && i >= 4 {
				t.Fatalf("pseudo-header %q after regular fields", hf.Name)
			}
			continue
		}
		if !validName(hf.Name) {
			t.Fatalf("invalid name in %q", hf)
		}
		if hopByHop(hf.Name) || request && (hf.Name == "host" || hf.Name == "expect") {
			t.Fatalf("%q passed", hf.Name)
		}
		if request && hf.Name == "te" && hf.Value != "trailers" {
			t.Fatalf("te: %q passed", hf.Value)
		}
		if hide[hf.Name] {
			t.Fatalf("hidden header %q passed", hf.Name)
		}
	}
	if request {
		for _, p := range []string{":method", ":scheme", ":path", ":authority"} {
			if pseudo[p] != 1 {
				t.Fatalf("%s appears %d times", p, pseudo[p])
			}
		}
	}
}
