package proxy

import (
	"testing"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

func TestUpstreamAuthority(t *testing.T) {
	for in, want := range map[string]string{
		"unix:/run/grpc.sock": "localhost",
		"127.0.0.1:50051":     "127.0.0.1:50051",
		"backends":            "backends",
	} {
		if got := upstreamAuthority(in); got != want {
			t.Errorf("upstreamAuthority(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHeaderPhase: server and date on every response; add_header only on
// nginx's list of statuses unless always; an empty value adds nothing.
func TestHeaderPhase(t *testing.T) {
	tbl, err := route.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	lit := func(s string) config.Template {
		if s == "" {
			return config.Template{}
		}
		return config.Template{Raw: s, Parts: []config.TemplatePart{{Literal: s}}}
	}
	st := &config.Settings{AddHeaders: []config.AddHeader{
		{Name: "X-A", Value: lit("a")},
		{Name: "X-B", Value: lit("b"), Always: true},
		{Name: "X-Empty", Value: lit("")},
	}}
	f := &filterCtx{st: st, tbl: tbl, r: &route.Request{}}
	names := func(fs []hpack.HeaderField) map[string]string {
		m := map[string]string{}
		for _, h := range fs {
			m[h.Name] = h.Value
		}
		return m
	}
	got := names(f.headerPhase(nil, 200))
	if got["server"] != "gproxy" || got["date"] == "" || got["x-a"] != "a" || got["x-b"] != "b" {
		t.Errorf("200: %v", got)
	}
	if _, ok := got["x-empty"]; ok {
		t.Errorf("200: empty add_header value was added: %v", got)
	}
	got = names(f.headerPhase(nil, 502))
	if _, ok := got["x-a"]; ok || got["x-b"] != "b" {
		t.Errorf("502: %v, want x-b only", got)
	}
}
