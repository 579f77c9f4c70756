package parser

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gproxy/gproxy/parser/config"
)

// dynUps is an upstream in shared memory, as health_check and resolve
// need, used by the location of line 3.
const dynUps = "events{}\nhttp{upstream u {zone u 64k; server 127.0.0.1:1;}\nserver{location / {grpc_pass grpc://u; "

// TestDynamicErrors: -t messages for the directives of health checks,
// DNS re-resolution, least_time and outlier ejection, each naming FILE:LINE.
// Messages of NGINX Plus directives follow nginx's shapes ("invalid
// parameter", "... requires upstream ... to be in shared memory").
func TestDynamicErrors(t *testing.T) {
	tests := []struct{ conf, want string }{
		// health_check (NGINX Plus).
		{dynUps + "health_check interval=0 type=grpc;}}}\n", `[emerg] invalid parameter "interval=0" in F:3`},
		{dynUps + "health_check interval=x type=grpc;}}}\n", `[emerg] invalid parameter "interval=x" in F:3`},
		{dynUps + "health_check fails=0 type=grpc;}}}\n", `[emerg] invalid parameter "fails=0" in F:3`},
		{dynUps + "health_check passes=x type=grpc;}}}\n", `[emerg] invalid parameter "passes=x" in F:3`},
		{dynUps + "health_check port=70000 type=grpc;}}}\n", `[emerg] invalid parameter "port=70000" in F:3`},
		{dynUps + "health_check type=http;}}}\n", `[emerg] invalid parameter "type=http" in F:3`},
		{dynUps + "health_check type=grpc grpc_status=0;}}}\n", `[emerg] invalid parameter "grpc_status=0" in F:3`},
		{dynUps + "health_check type=grpc grpc_status=17;}}}\n", `[emerg] invalid parameter "grpc_status=17" in F:3`},
		{dynUps + "health_check grpc_service=a type=grpc;}}}\n", `[emerg] invalid parameter "grpc_service=a" in F:3`},
		{dynUps + "health_check type=grpc mandatory;}}}\n", `[emerg] "type=grpc" must be the last parameter of "health_check" except "grpc_service=" and "grpc_status=", found "mandatory" in F:3`},
		{dynUps + "health_check persistent type=grpc;}}}\n", `[emerg] "persistent" requires "mandatory" in "health_check" in F:3`},
		{dynUps + "health_check;}}}\n", `[emerg] "health_check" without "type=grpc" is not supported by gproxy in F:3`},
		{dynUps + "health_check uri=/ type=grpc;}}}\n", `[emerg] the "uri=" parameter of "health_check" is not supported by gproxy: only "type=grpc" checks are in F:3`},
		{dynUps + "health_check keepalive_time=60s type=grpc;}}}\n", `[emerg] the "keepalive_time=" parameter of "health_check" is not supported by gproxy in F:3`},
		{dynUps + "health_check bogus type=grpc;}}}\n", `[emerg] invalid parameter "bogus" in F:3`},
		{"events{}\nhttp{\nupstream u {server 127.0.0.1:1;}\nserver{location / {grpc_pass grpc://u;\nhealth_check type=grpc;}}}\n", `[emerg] health check requires upstream "u" in F:3 to be in shared memory in F:5`},
		{"events{}\nhttp{server{location / {grpc_pass 127.0.0.1:1;\nhealth_check type=grpc;}}}\n", `[emerg] health check requires upstream "127.0.0.1:1" to be in shared memory: use an upstream block with "zone" in F:3`},
		{"events{}\nhttp{server{location / {\nhealth_check type=grpc;}}}\n", `[emerg] "health_check" requires "grpc_pass" to an upstream in the same location in F:3`},
		{"events{}\nhttp{server{\nhealth_check type=grpc;}}\n", `[emerg] "health_check" directive is not allowed here in F:3`},
		// zone.
		{"events{}\nhttp{upstream u {zone u 1; server 127.0.0.1:1;}}\n", `[emerg] zone "u" is too small in F:2`},
		{"events{}\nhttp{upstream u {zone u x; server 127.0.0.1:1;}}\n", `[emerg] invalid zone size "x" in F:2`},
		// resolve (nginx 1.27.3): the group must be in shared memory,
		// and a resolver must be defined.
		{"events{}\nhttp{resolver 127.0.0.1;\nupstream u {\nserver localhost:1 resolve;}}\n", `[emerg] resolving names at run time requires upstream "u" in F:3 to be in shared memory in F:4`},
		{"events{}\nhttp{upstream u {zone u 64k;\nserver localhost:1 resolve;}}\n", `[emerg] no resolver defined to resolve localhost in F:3`},
		{"events{}\nhttp{upstream u {zone u 64k;\nserver localhost:1 service=grpc;}}\n", `[emerg] service upstream "localhost:1" requires the "resolve" parameter in F:3`},
		{"events{}\nhttp{upstream u {zone u 64k; resolver 127.0.0.1;\nserver localhost:50051 service=grpc resolve;}}\n", `[emerg] service upstream "localhost:50051" may not have port in F:3`},
		{"events{}\nhttp{upstream u {zone u 64k; resolver 127.0.0.1;\nserver unix:/tmp/s resolve;}}\n", `[emerg] invalid parameter "resolve" in F:3`},
		{"events{}\nhttp{upstream u {zone u 64k; resolver 127.0.0.1 valid=5x; server localhost:1 resolve;}}\n", `[emerg] invalid parameter: valid=5x in F:2`},
		{"events{}\nhttp{upstream u {zone u 64k; resolver 127.0.0.1 ipv6=maybe; server localhost:1 resolve;}}\n", `[emerg] invalid parameter: ipv6=maybe in F:2`},
		{"events{}\nhttp{upstream u {zone u 64k; resolver_timeout 5x; server localhost:1 resolve;}}\n", `[emerg] "resolver_timeout" directive invalid value in F:2`},
		// least_time (NGINX Plus).
		{"events{}\nhttp{upstream u {least_time first_byte; server 127.0.0.1:1;}}\n", `[emerg] invalid parameter "first_byte" in F:2`},
		{"events{}\nhttp{upstream u {least_time header all; server 127.0.0.1:1;}}\n", `[emerg] invalid parameter "all" in F:2`},
		{"events{}\nhttp{upstream u {least_time; server 127.0.0.1:1;}}\n", `[emerg] invalid number of arguments in "least_time" directive in F:2`},
		// gproxy_outlier_detection (gproxy).
		{"events{}\nhttp{upstream u {gproxy_outlier_detection consecutive=0; server 127.0.0.1:1;}}\n", `[emerg] invalid parameter "consecutive=0" in F:2`},
		{"events{}\nhttp{upstream u {gproxy_outlier_detection max_ejection_percent=101; server 127.0.0.1:1;}}\n", `[emerg] invalid parameter "max_ejection_percent=101" in F:2`},
		{"events{}\nhttp{upstream u {gproxy_outlier_detection base_ejection_time=x; server 127.0.0.1:1;}}\n", `[emerg] invalid parameter "base_ejection_time=x" in F:2`},
		{"events{}\nhttp{upstream u {gproxy_outlier_detection interval; server 127.0.0.1:1;}}\n", `[emerg] invalid parameter "interval" in F:2`},
		{"events{}\nhttp{upstream u {gproxy_outlier_detection bogus=1; server 127.0.0.1:1;}}\n", `[emerg] invalid parameter "bogus=1" in F:2`},
		{"events{}\nhttp{upstream u {gproxy_outlier_detection base_ejection_time=60s max_ejection_time=30s; server 127.0.0.1:1;}}\n", `[emerg] "max_ejection_time" must not be less than "base_ejection_time" in "gproxy_outlier_detection" directive in F:2`},
		{"events{}\nhttp{upstream u {gproxy_outlier_detection; gproxy_outlier_detection; server 127.0.0.1:1;}}\n", `[emerg] "gproxy_outlier_detection" directive is duplicate in F:2`},
		{"events{}\nhttp{server{gproxy_outlier_detection;}}\n", `[emerg] "gproxy_outlier_detection" directive is not allowed here in F:2`},
	}
	for _, tt := range tests {
		dir, _, _, err := load(t, map[string]string{"nginx.conf": tt.conf}, Options{})
		want := strings.ReplaceAll(tt.want, "F:", filepath.Join(dir, "nginx.conf")+":")
		if err == nil {
			t.Errorf("%q: no error, want %s", tt.conf, want)
			continue
		}
		var d *Diagnostic
		if !errors.As(err, &d) {
			t.Errorf("%q: error %T is not a *Diagnostic", tt.conf, err)
			continue
		}
		if got := err.Error(); got != want {
			t.Errorf("%q:\n got %s\nwant %s", tt.conf, got, want)
		}
	}
}

// TestDynamicValues: what the directives store, with Plus's and Envoy's
// defaults.
func TestDynamicValues(t *testing.T) {
	cfg, _ := mustLoad(t, `events{}
http {
  resolver 127.0.0.1 valid=10s ipv6=off;
  upstream u {
    zone u 64k;
    least_time last_byte inflight;
    gproxy_outlier_detection consecutive=3 base_ejection_time=10s;
    server localhost:1 resolve;
    server localhost service=grpc resolve;
  }
  server { location / { grpc_pass grpc://u;
    health_check interval=2s fails=2 passes=3 port=9 mandatory persistent type=grpc grpc_service=a.B grpc_status=12;
    health_check type=grpc;
  } }
}
`)
	u := cfg.HTTP.UpstreamByName["u"]
	if u.Zone != "u" || u.Balance.Method != "least_time" || u.Balance.LeastTime != "last_byte" || !u.Balance.Inflight {
		t.Errorf("upstream = zone %q balance %+v", u.Zone, u.Balance)
	}
	if u.Resolver == nil || u.Resolver.Valid != 10*time.Second || u.Resolver.IPv6 || u.ResolverTimeout != 30*time.Second {
		t.Errorf("resolver from http = %+v timeout %v", u.Resolver, u.ResolverTimeout)
	}
	od := u.Outlier
	if od == nil || od.Consecutive != 3 || od.BaseEjectionTime != 10*time.Second || od.MaxEjectionTime != 300*time.Second ||
		od.MaxEjectionPercent != 10 || od.Interval != 10*time.Second {
		t.Errorf("outlier = %+v", od)
	}
	if s := u.Servers[1]; s.Service != "grpc" || s.Address != "localhost:0" {
		t.Errorf("SRV server = %+v", s)
	}
	hcs := cfg.HTTP.Servers[0].Locations[0].HealthChecks
	want := []config.HealthCheck{
		{Interval: 2 * time.Second, Fails: 2, Passes: 3, Port: 9, Mandatory: true, Persistent: true, GRPCService: "a.B", GRPCStatus: 12},
		{Interval: 5 * time.Second, Fails: 1, Passes: 1, GRPCStatus: -1},
	}
	if len(hcs) != 2 {
		t.Fatalf("health checks = %+v", hcs)
	}
	for i := range want {
		want[i].Pos = hcs[i].Pos
		if hcs[i] != want[i] {
			t.Errorf("health_check %d = %+v, want %+v", i, hcs[i], want[i])
		}
	}
}
