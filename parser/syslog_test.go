package parser

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gproxy/gproxy/parser/config"
)

// TestSyslogErrors checks every refusal of a syslog destination against the
// message nginx 1.22 gives for the same directive (`nginx -t`), for
// error_log and access_log alike.
func TestSyslogErrors(t *testing.T) {
	long := "unix:/" + strings.Repeat("a", 107) // 108 bytes with the NUL: too long
	tests := []struct{ dest, want string }{
		{"syslog:", `unknown syslog parameter ""`},
		{"syslog:server=127.0.0.1,", `unknown syslog parameter ""`},
		{"syslog:,server=127.0.0.1", `unknown syslog parameter ""`},
		{"syslog:server=127.0.0.1,foo=bar,baz", `unknown syslog parameter "foo=bar"`},
		{"syslog:server=127.0.0.1,nohostnamex", `unknown syslog parameter "nohostnamex"`},
		{"syslog:server=127.0.0.1,nohostname=1", `unknown syslog parameter "nohostname=1"`},
		{"syslog:server=127.0.0.1,FACILITY=local0", `unknown syslog parameter "FACILITY=local0"`},
		{"syslog:tag=x", `no syslog server specified`},
		{"syslog:server=127.0.0.1,server=127.0.0.2", `duplicate syslog "server"`},
		{"syslog:server=127.0.0.1,facility=local0,facility=local1", `duplicate syslog "facility"`},
		{"syslog:server=127.0.0.1,severity=warn,severity=warn", `duplicate syslog "severity"`},
		{"syslog:server=127.0.0.1,tag=,tag=x", `duplicate syslog "tag"`},
		{"syslog:server=127.0.0.1,facility=x", `unknown syslog facility "x"`},
		{"syslog:server=127.0.0.1,facility=LOCAL0", `unknown syslog facility "LOCAL0"`},
		{"syslog:server=127.0.0.1,facility=", `unknown syslog facility ""`},
		{"syslog:server=127.0.0.1,severity=warning", `unknown syslog severity "warning"`},
		{"syslog:server=127.0.0.1,severity=", `unknown syslog severity ""`},
		{"syslog:server=127.0.0.1,tag=a-b", `syslog "tag" only allows alphanumeric characters and underscore`},
		{"syslog:server=127.0.0.1,tag=\u00e9", `syslog "tag" only allows alphanumeric characters and underscore`},
		{"syslog:server=127.0.0.1,tag=" + strings.Repeat("a", 33), `syslog tag length exceeds 32`},
		{"syslog:server=127.0.0.1,tag=" + strings.Repeat("a-", 17), `syslog tag length exceeds 32`},
		{"syslog:server=", `no host in syslog server ""`},
		{"syslog:server=:514", `no host in syslog server ":514"`},
		{"syslog:server=[]", `no host in syslog server "[]"`},
		{"syslog:server=127.0.0.1:0", `invalid port in syslog server "127.0.0.1:0"`},
		{"syslog:server=127.0.0.1:65536", `invalid port in syslog server "127.0.0.1:65536"`},
		{"syslog:server=127.0.0.1:x", `invalid port in syslog server "127.0.0.1:x"`},
		{"syslog:server=127.0.0.1:+5", `invalid port in syslog server "127.0.0.1:+5"`},
		{"syslog:server=127.0.0.1:", `invalid port in syslog server "127.0.0.1:"`},
		{"syslog:server=127.0.0.1:514:514", `invalid port in syslog server "127.0.0.1:514:514"`},
		{"syslog:server=::1", `invalid port in syslog server "::1"`},
		{"syslog:server=[::1]:x", `invalid port in syslog server "[::1]:x"`},
		{"syslog:server=[::1]:", `invalid port in syslog server "[::1]:"`},
		{"syslog:server=[::1]x", `invalid host in syslog server "[::1]x"`},
		{"syslog:server=[::1]/x", `invalid host in syslog server "[::1]/x"`},
		{"syslog:server=[::1", `invalid host in syslog server "[::1"`},
		{"syslog:server=127.0.0.1/x", `invalid host in syslog server "127.0.0.1/x"`},
		{"syslog:server=127.0.0.1?x", `invalid host in syslog server "127.0.0.1?x"`},
		{"syslog:server=http://127.0.0.1", `invalid host in syslog server "http://127.0.0.1"`},
		{"syslog:server=[zz]", `invalid IPv6 address in syslog server "[zz]"`},
		{"syslog:server=[fe80::1%lo]", `invalid IPv6 address in syslog server "[fe80::1%lo]"`},
		{"syslog:server=nosuch.invalid", `host not found in syslog server "nosuch.invalid"`},
		{"syslog:server=*:514", `host not found in syslog server "*:514"`},
		{"syslog:server=unix:", `no path in the unix domain socket in syslog server "unix:"`},
		{"syslog:server=Unix:", `no path in the unix domain socket in syslog server "Unix:"`},
		{"syslog:server=" + long, `too long path in the unix domain socket in syslog server "` + long + `"`},
	}
	for _, tt := range tests {
		for _, conf := range []string{
			"events{}\nerror_log " + tt.dest + ";\n",
			"events{}\nerror_log " + tt.dest + " bogus;\n", // the destination is checked first
			"events{}\nhttp{server{\nerror_log " + tt.dest + ";}}\n",
			"events{}\nhttp{server{\naccess_log " + tt.dest + ";}}\n",
			"events{}\nhttp{server{\naccess_log " + tt.dest + " nosuch;}}\n", // before the format
		} {
			dir, _, _, err := load(t, map[string]string{"nginx.conf": conf}, Options{})
			line := "2"
			if strings.Contains(conf, "http{") {
				line = "3"
			}
			want := "[emerg] " + tt.want + " in " + filepath.Join(dir, "nginx.conf") + ":" + line
			if err == nil {
				t.Errorf("%q: no error, want %s", conf, want)
			} else if got := err.Error(); got != want {
				t.Errorf("%q:\n got %s\nwant %s", conf, got, want)
			}
		}
	}
}

// TestSyslogParsed checks the typed destinations, with nginx's defaults.
func TestSyslogParsed(t *testing.T) {
	maxPath := "/" + strings.Repeat("a", 106) // 107 bytes and the NUL fit
	tests := []struct {
		dest string
		want config.Syslog
	}{
		{"syslog:server=127.0.0.1", config.Syslog{Server: "127.0.0.1", Network: "udp", Addr: "127.0.0.1:514",
			Facility: 23, Severity: 6, Tag: "nginx"}},
		{"syslog:server=localhost:00515,facility=kern,severity=emerg,tag=,nohostname,nohostname",
			config.Syslog{Server: "localhost:00515", Network: "udp", Addr: "127.0.0.1:515", Tag: "", NoHostname: true}},
		{"syslog:nohostname,tag=A_1,severity=debug,facility=local0,server=[::1]:5514",
			config.Syslog{Server: "[::1]:5514", Network: "udp", Addr: "[::1]:5514", Facility: 16, Severity: 7, Tag: "A_1", NoHostname: true}},
		{"syslog:server=[::1],tag=" + strings.Repeat("z", 32), config.Syslog{Server: "[::1]", Network: "udp", Addr: "[::1]:514",
			Facility: 23, Severity: 6, Tag: strings.Repeat("z", 32)}},
		{"syslog:server=unix:/dev/log,facility=auth,severity=warn", config.Syslog{Server: "unix:/dev/log", Network: "unixgram",
			Addr: "/dev/log", Facility: 4, Severity: 4, Tag: "nginx"}},
		{"syslog:server=UNIX:rel/sock", config.Syslog{Server: "UNIX:rel/sock", Network: "unixgram", Addr: "rel/sock",
			Facility: 23, Severity: 6, Tag: "nginx"}},
		{"syslog:server=unix:" + maxPath, config.Syslog{Server: "unix:" + maxPath, Network: "unixgram", Addr: maxPath,
			Facility: 23, Severity: 6, Tag: "nginx"}},
	}
	for _, tt := range tests {
		cfg, _ := mustLoad(t, "events{}\nerror_log "+tt.dest+" warn;\nhttp{server{access_log "+tt.dest+";}}\n")
		if len(cfg.ErrorLogs) != 1 || cfg.ErrorLogs[0].Syslog == nil {
			t.Fatalf("%s: error logs %+v", tt.dest, cfg.ErrorLogs)
		}
		el := cfg.ErrorLogs[0]
		if *el.Syslog != tt.want || el.Path != tt.dest || el.Level != "warn" {
			t.Errorf("error_log %s:\n got %+v (%+v)\nwant %+v", tt.dest, *el.Syslog, el, tt.want)
		}
		logs := cfg.HTTP.Servers[0].Settings.AccessLogs
		if len(logs) != 1 || logs[0].Syslog == nil || *logs[0].Syslog != tt.want || logs[0].Path != tt.dest {
			t.Errorf("access_log %s: %+v", tt.dest, logs)
		}
	}
	// Files and stderr carry no destination.
	cfg, _ := mustLoad(t, "events{}\nerror_log stderr;\nhttp{server{access_log x.log;}}\n")
	if cfg.ErrorLogs[0].Syslog != nil || cfg.HTTP.Servers[0].Settings.AccessLogs[0].Syslog != nil {
		t.Errorf("non-syslog logs with a syslog destination: %+v", cfg)
	}
}
