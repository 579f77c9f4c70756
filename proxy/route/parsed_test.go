package route_test

import (
	"context"
	"testing"

	"github.com/gproxy/gproxy/parser"
	"github.com/gproxy/gproxy/proxy/route"
	"golang.org/x/net/http2/hpack"
)

// TestParsedConfig routes a configuration read by the real parser.
func TestParsedConfig(t *testing.T) {
	conf := `
events {}
http {
    log_format grpc '$remote_addr [$time_local] "$request" $status $grpc_status $upstream_addr $request_time';
    map $http_x_tenant $pool {
        default  main;
        ~^b-     beta;
    }
    upstream grpc_servers {
        server 127.0.0.1:50051;
    }
    server {
        listen 127.0.0.1:30051 http2;
        server_name api.test *.api.test;
        if ($http_x_block) { return 403 "blocked"; }
        location / {
            grpc_set_header X-Real-IP $remote_addr;
            grpc_set_header X-Pool $pool;
            grpc_hide_header x-internal;
            grpc_pass grpc://grpc_servers;
        }
        location = /healthz {
            return 200 "ok $host";
        }
        location ~ ^/admin\. {
            return 301 /;
        }
    }
    server {
        listen 127.0.0.1:30051 default_server;
        return 444;
    }
}
`
	lookup := func(ctx context.Context, host string) ([]string, error) { return []string{"127.0.0.1"}, nil }
	cfg, _, err := parser.LoadBytes("/etc/nginx/nginx.conf", []byte(conf), parser.Options{LookupHost: lookup})
	if err != nil {
		t.Skipf("parser cannot read the configuration yet: %v", err)
	}
	tb, err := route.New(cfg.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	ls := tb.Listeners()
	if len(ls) != 1 || ls[0].Address != "127.0.0.1:30051" || !ls[0].HTTP2 || len(ls[0].Servers) != 2 {
		t.Fatalf("listeners %+v", ls)
	}
	l := ls[0]
	tests := []struct {
		host, path string
		hdr        string
		code       int
		body       string
	}{
		{"api.test", "/pkg.Svc/M", "", 0, ""},
		{"x.api.test", "/healthz", "", 200, "ok x.api.test"},
		{"api.test", "/admin.Svc/M", "", 301, ""},
		{"api.test", "/pkg.Svc/M", "1", 403, "blocked"},
		{"other.test", "/pkg.Svc/M", "", 444, ""},
	}
	for _, tc := range tests {
		r := &route.Request{Method: "POST", Authority: tc.host, Path: tc.path}
		if tc.hdr != "" {
			r.Headers = append(r.Headers, hf("x-block", tc.hdr))
		}
		_, loc, a := tb.Route(l, r)
		code, body := 0, ""
		if a != nil {
			code, body = a.Code, a.Body
		}
		if code != tc.code || body != tc.body {
			t.Errorf("%s%s: got %d %q", tc.host, tc.path, code, body)
		}
		if code == 0 {
			if loc == nil || len(loc.SetHeaders) != 2 || !loc.HideResponse["x-internal"] {
				t.Errorf("location %+v", loc)
				continue
			}
			r.Headers = append(r.Headers, hf("x-tenant", "b-1"))
			if got := tb.Expand(loc.SetHeaders[1].Value, r); got != "beta" {
				t.Errorf("$pool = %q", got)
			}
		}
	}
}

func hf(name, value string) hpack.HeaderField { return hpack.HeaderField{Name: name, Value: value} }
