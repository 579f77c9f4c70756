package parser

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// TestListenParams: every socket parameter of listen is stored as typed.
func TestListenParams(t *testing.T) {
	base := config.Listen{Network: "tcp", Address: "127.0.0.1:8080"}
	with := func(f func(*config.Listen)) config.Listen {
		l := base
		f(&l)
		return l
	}
	for _, tc := range []struct {
		params string
		want   config.Listen
	}{
		{"", base},
		{"bind", with(func(l *config.Listen) { l.Bind = true })},
		{"bind bind", with(func(l *config.Listen) { l.Bind = true })},
		{"deferred", with(func(l *config.Listen) { l.Deferred = true })},
		{"rcvbuf=8k", with(func(l *config.Listen) { l.RcvBuf = 8 << 10 })},
		{"rcvbuf=1M", with(func(l *config.Listen) { l.RcvBuf = 1 << 20 })},
		{"rcvbuf=0", with(func(l *config.Listen) { l.RcvBuf = 1 })}, // the kernel's minimum, as 0
		{"sndbuf=12345", with(func(l *config.Listen) { l.SndBuf = 12345 })},
		{"fastopen=256", with(func(l *config.Listen) { l.FastOpen = 256 })},
		{"fastopen=0", base},
		{"ipv6only=on", with(func(l *config.Listen) { l.IPv6Only = true })},
		{"ipv6only=off", with(func(l *config.Listen) { l.DualStack = true })},
		{"so_keepalive=on", with(func(l *config.Listen) { l.SoKeepalive = config.SoKeepalive{Set: true, On: true} })},
		{"so_keepalive=off", with(func(l *config.Listen) { l.SoKeepalive = config.SoKeepalive{Set: true} })},
		{"so_keepalive=on so_keepalive=off", with(func(l *config.Listen) { l.SoKeepalive = config.SoKeepalive{Set: true} })},
		{"so_keepalive=30m::10", with(func(l *config.Listen) {
			l.SoKeepalive = config.SoKeepalive{Set: true, On: true, Idle: 30 * time.Minute, Count: 10}
		})},
		{"so_keepalive=1h30m:1s:1", with(func(l *config.Listen) {
			l.SoKeepalive = config.SoKeepalive{Set: true, On: true, Idle: 90 * time.Minute, Interval: time.Second, Count: 1}
		})},
		{"so_keepalive=:5", with(func(l *config.Listen) {
			l.SoKeepalive = config.SoKeepalive{Set: true, On: true, Interval: 5 * time.Second}
		})},
		{"so_keepalive=7::", with(func(l *config.Listen) {
			l.SoKeepalive = config.SoKeepalive{Set: true, On: true, Idle: 7 * time.Second}
		})},
	} {
		cfg, _ := mustLoad(t, "events{}\nhttp{server{listen 127.0.0.1:8080 "+tc.params+";}}\n")
		got := cfg.HTTP.Servers[0].Listens[0]
		got.Pos = config.Pos{}
		if got != tc.want {
			t.Errorf("listen %s:\n got %+v\nwant %+v", tc.params, got, tc.want)
		}
	}
}

// TestListenParamErrors: invalid values are refused with nginx 1.22's
// words (checked with `nginx -t`), and socket options count as the
// options nginx allows on one listen per address.
func TestListenParamErrors(t *testing.T) {
	for _, tc := range []struct{ params, want string }{
		{"so_keepalive=x", `invalid so_keepalive value: "x"`},
		{"so_keepalive=", `invalid so_keepalive value: ""`},
		{"so_keepalive=On", `invalid so_keepalive value: "On"`},
		{"so_keepalive=::", `invalid so_keepalive value: "::"`},
		{"so_keepalive=:", `invalid so_keepalive value: ":"`},
		{"so_keepalive=0", `invalid so_keepalive value: "0"`},
		{"so_keepalive=0:0:0", `invalid so_keepalive value: "0:0:0"`},
		{"so_keepalive=1:2:3:4", `invalid so_keepalive value: "1:2:3:4"`},
		{"so_keepalive=500ms", `invalid so_keepalive value: "500ms"`},
		{"so_keepalive=1d:1ms", `invalid so_keepalive value: "1d:1ms"`},
		{"so_keepalive=::-1", `invalid so_keepalive value: "::-1"`},
		{"rcvbuf=x", `invalid rcvbuf "rcvbuf=x"`},
		{"rcvbuf=", `invalid rcvbuf "rcvbuf="`},
		{"rcvbuf=1g", `invalid rcvbuf "rcvbuf=1g"`},
		{"rcvbuf=-1", `invalid rcvbuf "rcvbuf=-1"`},
		{"rcvbuf=1k1", `invalid rcvbuf "rcvbuf=1k1"`},
		{"sndbuf=x", `invalid sndbuf "sndbuf=x"`},
		{"fastopen=x", `invalid fastopen "fastopen=x"`},
		{"fastopen=-1", `invalid fastopen "fastopen=-1"`},
		{"fastopen=", `invalid fastopen "fastopen="`},
		{"backlog=0", `invalid backlog "backlog=0"`},
		{"ipv6only=x", `invalid parameter "ipv6only=x"`},
		{"deferred=1", `invalid parameter "deferred=1"`},
		{"bind=1", `invalid parameter "bind=1"`},
		{"setfib=1", `the "setfib" parameter of the "listen" directive is not supported by gproxy`},
	} {
		dir, _, _, err := load(t, map[string]string{"nginx.conf": "events{}\nhttp{server{listen 127.0.0.1:8080 " + tc.params + ";}}\n"}, Options{})
		want := "[emerg] " + tc.want + " in " + filepath.Join(dir, "nginx.conf") + ":2"
		if err == nil || err.Error() != want {
			t.Errorf("listen %s: %v, want %s", tc.params, err, want)
		}
	}
	for _, p := range []string{"bind", "deferred", "rcvbuf=8k", "sndbuf=8k", "fastopen=1", "so_keepalive=on", "ipv6only=on"} {
		conf := "events{}\nhttp{server{listen 127.0.0.1:8080;}\nserver{listen 127.0.0.1:8080 " + p + ";}\nserver{listen 127.0.0.1:8080 reuseport;}}\n"
		_, _, _, err := load(t, map[string]string{"nginx.conf": conf}, Options{})
		if err == nil || !strings.Contains(err.Error(), "duplicate listen options for 127.0.0.1:8080") || !strings.HasSuffix(err.Error(), ":4") {
			t.Errorf("%s then reuseport: %v, want duplicate listen options at line 4", p, err)
		}
	}
}
