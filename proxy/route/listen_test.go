package route_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/route"
)

// listenersOf parses an http block holding servers (names resolving to
// 127.0.0.1) and returns the sockets route plans to open.
func listenersOf(t *testing.T, servers string) []*route.Listener {
	t.Helper()
	conf := "events {}\nhttp {\n" + servers + "\n}\n"
	lookup := func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil }
	cfg, _, err := parser.LoadBytes("/etc/nginx/nginx.conf", []byte(conf), parser.Options{LookupHost: lookup})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := route.New(cfg.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	return tb.Listeners()
}

// TestListenOwnSocket: a specific address on a wildcard's port shares the
// wildcard's socket, unless its listen has `bind` or any socket option,
// which in nginx implies bind; the options then reach its Listener.
func TestListenOwnSocket(t *testing.T) {
	for _, tc := range []struct {
		params string
		check  func(l *route.Listener) bool
	}{
		{"", nil},
		{"http2", nil},
		{"default_server", nil},
		{"bind", func(l *route.Listener) bool { return l.Bind }},
		{"deferred", func(l *route.Listener) bool { return l.Deferred }},
		{"rcvbuf=64k", func(l *route.Listener) bool { return l.RcvBuf == 64<<10 }},
		{"sndbuf=1m", func(l *route.Listener) bool { return l.SndBuf == 1<<20 }},
		{"fastopen=16", func(l *route.Listener) bool { return l.FastOpen == 16 }},
		{"backlog=100", func(l *route.Listener) bool { return l.Backlog == 100 }},
		{"reuseport", func(l *route.Listener) bool { return l.ReusePort }},
		{"so_keepalive=off", func(l *route.Listener) bool { return l.SoKeepalive == config.SoKeepalive{Set: true} }},
		{"so_keepalive=30m::10", func(l *route.Listener) bool {
			return l.SoKeepalive == config.SoKeepalive{Set: true, On: true, Idle: 30 * time.Minute, Count: 10}
		}},
	} {
		ls := listenersOf(t, `
    server { listen 30051; }
    server { listen 127.0.0.1:30051 `+tc.params+`; listen 127.0.0.1:30052; }
    server { listen 127.0.0.1:30051; server_name other.test; }`)
		var addrs []string
		for _, l := range ls {
			addrs = append(addrs, l.Address)
		}
		want := "0.0.0.0:30051 127.0.0.1:30052"
		if tc.check != nil {
			want = "0.0.0.0:30051 127.0.0.1:30051 127.0.0.1:30052"
		}
		if got := strings.Join(addrs, " "); got != want {
			t.Errorf("%q: sockets %s, want %s", tc.params, got, want)
			continue
		}
		if tc.check != nil {
			if own := ls[1]; !tc.check(own) || len(own.Servers) != 2 {
				t.Errorf("%q: listener %+v", tc.params, own)
			}
			if other := ls[2]; other.Bind || other.SoKeepalive.Set || other.RcvBuf != 0 {
				t.Errorf("%q: options leaked to %s: %+v", tc.params, other.Address, other)
			}
		}
	}
}

// TestListenIPv6Only: ipv6only= is stored as typed (on, off), and either
// gives an IPv6 address a socket of its own beside the IPv6 wildcard.
func TestListenIPv6Only(t *testing.T) {
	lookup := func(context.Context, string) ([]string, error) { return []string{"::1"}, nil }
	for _, tc := range []struct {
		params          string
		own, only, dual bool
	}{
		{"", false, false, false},
		{"ipv6only=on", true, true, false},
		{"ipv6only=off", true, false, true},
	} {
		conf := "events {}\nhttp {\n server { listen [::]:30051; }\n server { listen [::1]:30051 " + tc.params + "; }\n}\n"
		cfg, _, err := parser.LoadBytes("/etc/nginx/nginx.conf", []byte(conf), parser.Options{LookupHost: lookup})
		if err != nil {
			t.Fatal(err)
		}
		tb, err := route.New(cfg.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		ls := tb.Listeners()
		if own := len(ls) == 2; own != tc.own {
			t.Errorf("%q: %d sockets", tc.params, len(ls))
			continue
		}
		if l := ls[len(ls)-1]; tc.own && (l.IPv6Only != tc.only || l.DualStack != tc.dual) {
			t.Errorf("%q: IPv6Only %v DualStack %v", tc.params, l.IPv6Only, l.DualStack)
		}
	}
}
