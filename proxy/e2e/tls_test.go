package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gproxy/gproxy/parser/tlsconf/tlstest"
)

// pki is a throw-away CA with a server certificate for "localhost" (the
// proxy's and the backends') and a client certificate, written to a
// temporary directory.
type pki struct {
	dir                  string
	ca, server, client   *tlstest.Cert
	caPath               string
	serverCrt, serverKey string
	clientCrt, clientKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.ca = tlstest.New(t, nil, tlstest.Options{CN: "gproxy test CA", CA: true})
	p.server = tlstest.New(t, p.ca, tlstest.Options{CN: "localhost"})
	p.client = tlstest.New(t, p.ca, tlstest.Options{CN: "client", Client: true, Org: "gproxy, tests", Country: "DE", Serial: 0x1234})
	p.caPath, _ = p.ca.Write(t, p.dir, "ca")
	p.serverCrt, p.serverKey = p.server.Write(t, p.dir, "server")
	p.clientCrt, p.clientKey = p.client.Write(t, p.dir, "client")
	return p
}

// startTLSBackends starts n TestService backends serving TLS with the
// server certificate.
func (p *pki) startTLSBackends(t *testing.T, n int) []*backend {
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.server.TLS()}})
	return startBackends(t, n, grpc.Creds(creds))
}

// dialTLS opens one client connection over TLS, trusting the CA, with the
// given client certificates.
func (p *pki) dialTLS(t *testing.T, addr, serverName string, certs ...tls.Certificate) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: p.ca.Pool(), ServerName: serverName, Certificates: certs})
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestInteropTLS runs the interop cases with TLS on both hops, and on
// one hop only each way.
func TestInteropTLS(t *testing.T) {
	p := newPKI(t)
	for _, c := range []struct {
		name          string
		in, out       bool
		listen, proxy string
	}{
		{"both", true, true, "ssl http2", "grpcs"},
		{"in", true, false, "ssl http2", "grpc"},
		{"out", false, true, "http2", "grpcs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var bs []*backend
			if c.out {
				bs = p.startTLSBackends(t, 2)
			} else {
				bs = startBackends(t, 2)
			}
			addr := freeAddr(t)
			startProxy(t, upstreamBlock("backends", bs)+fmt.Sprintf(`
server {
    listen %s %s;
    client_max_body_size 0;
    ssl_certificate %s;
    ssl_certificate_key %s;
    location / {
        grpc_pass %s://backends;
        grpc_ssl_verify on;
        grpc_ssl_name localhost;
        grpc_ssl_trusted_certificate %s;
    }
}
`, addr, c.listen, p.serverCrt, p.serverKey, c.proxy, p.caPath))
			var cc *grpc.ClientConn
			if c.in {
				cc = p.dialTLS(t, addr, "localhost")
			} else {
				cc = dial(t, addr)
			}
			runInteropCases(t, cc)
		})
	}
}

// TestUpstreamVerifyFails: with grpc_ssl_verify on, a backend whose
// certificate the trusted list does not vouch for is not used.
func TestUpstreamVerifyFails(t *testing.T) {
	p := newPKI(t)
	other := tlstest.New(t, nil, tlstest.Options{CN: "other CA", CA: true})
	otherPath, _ := other.Write(t, p.dir, "other")
	bs := p.startTLSBackends(t, 1)
	addr := freeAddr(t)
	startProxy(t, upstreamBlock("backends", bs)+fmt.Sprintf(`
server {
    listen %s http2;
    location / {
        grpc_pass grpcs://backends;
        grpc_ssl_verify on;
        grpc_ssl_trusted_certificate %s;
    }
}
`, addr, otherPath))
	_, err := client(t, addr).EmptyCall(testCtx(t, 10*time.Second), &testpb.Empty{})
	if err == nil {
		t.Fatal("call through an unverifiable upstream succeeded")
	}
	t.Logf("refused as expected: %v", err)
}

// TestMutualTLS: ssl_verify_client on refuses a call without a client
// certificate and serves one with; optional serves both, and the access
// log and grpc_set_header show $ssl_client_verify and the client's
// names.
func TestMutualTLS(t *testing.T) {
	if *proxyFlag != "gproxy" {
		t.Skip("checks gproxy's UNAUTHENTICATED answer and log lines")
	}
	p := newPKI(t)
	var gotVerify atomic.Value
	bs := startBackends(t, 1, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("x-client-verify"); len(v) > 0 {
			gotVerify.Store(v[0])
		}
		return h(ctx, req)
	}))
	on, opt := freeAddr(t), freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	startProxy(t, upstreamBlock("backends", bs)+fmt.Sprintf(`
log_format tls '$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn|$ssl_client_serial|$ssl_protocol|$ssl_server_name';
server {
    listen %s ssl http2;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_verify_client on;
    ssl_client_certificate %s;
    location / { grpc_pass grpc://backends; }
}
server {
    listen %s ssl http2;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_verify_client optional;
    ssl_client_certificate %s;
    access_log %s tls;
    location / {
        grpc_pass grpc://backends;
        grpc_set_header x-client-verify $ssl_client_verify;
    }
}
`, on, p.serverCrt, p.serverKey, p.caPath, opt, p.serverCrt, p.serverKey, p.caPath, logPath))
	ctx := testCtx(t, 20*time.Second)

	_, err := testpb.NewTestServiceClient(p.dialTLS(t, on, "localhost")).EmptyCall(ctx, &testpb.Empty{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "No required SSL certificate was sent") {
		t.Errorf("on, no certificate: %v, want Unauthenticated with nginx's text", err)
	}
	if _, err := testpb.NewTestServiceClient(p.dialTLS(t, on, "localhost", p.client.TLS())).EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Errorf("on, with certificate: %v", err)
	}
	stranger := tlstest.New(t, nil, tlstest.Options{CN: "stranger", Client: true})
	// Go's client sends only certificates the server's CA list names
	// unless told otherwise.
	creds := credentials.NewTLS(&tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { c := stranger.TLS(); return &c, nil }})
	scc, err := grpc.NewClient("passthrough:///"+on, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer scc.Close()
	_, err = testpb.NewTestServiceClient(scc).EmptyCall(ctx, &testpb.Empty{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "The SSL certificate error") {
		t.Errorf("on, unknown certificate: %v, want Unauthenticated", err)
	}

	if _, err := testpb.NewTestServiceClient(p.dialTLS(t, opt, "localhost")).EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Errorf("optional, no certificate: %v", err)
	}
	if _, err := testpb.NewTestServiceClient(p.dialTLS(t, opt, "localhost", p.client.TLS())).EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Errorf("optional, with certificate: %v", err)
	}
	lines := waitLogLines(t, logPath, 2)
	want := []string{
		"NONE|-|-|-|TLSv1.3|localhost",
		"SUCCESS|CN=client,O=gproxy\\x5C, tests,C=DE|CN=gproxy test CA|1234|TLSv1.3|localhost",
	}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Errorf("log lines %q, want %q", lines, want)
			break
		}
	}
	if got, _ := gotVerify.Load().(string); got != "SUCCESS" {
		t.Errorf("grpc_set_header x-client-verify $ssl_client_verify reached the backend as %q", got)
	}
}

// TestALPNWithoutH2: a client offering only http/1.1 in ALPN gets, on a
// grpc_pass location, a 400 saying gRPC needs HTTP/2.
func TestALPNWithoutH2(t *testing.T) {
	if *proxyFlag != "gproxy" {
		t.Skip("nginx passes HTTP/1.1 to a grpc_pass upstream and answers 502")
	}
	p := newPKI(t)
	bs := startBackends(t, 1)
	addr := freeAddr(t)
	startProxy(t, upstreamBlock("backends", bs)+fmt.Sprintf(`
server {
    listen %s ssl http2;
    ssl_certificate %s;
    ssl_certificate_key %s;
    location / { grpc_pass grpc://backends; }
}
`, addr, p.serverCrt, p.serverKey))
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /grpc.testing.TestService/EmptyCall HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/grpc\r\nContent-Length: 5\r\n\r\n\x00\x00\x00\x00\x00")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "HTTP/2") {
		t.Errorf("got %d %q, want 400 saying gRPC needs HTTP/2", resp.StatusCode, body)
	}
}

// TestSNI: the server_name SNI names picks the server and its
// certificate; an unknown name gets the default server's, and a default
// server with ssl_reject_handshake refuses the handshake.
func TestSNI(t *testing.T) {
	p := newPKI(t)
	a := tlstest.New(t, p.ca, tlstest.Options{CN: "a.test"})
	b := tlstest.New(t, p.ca, tlstest.Options{CN: "b.test", RSA: true})
	aCrt, aKey := a.Write(t, p.dir, "a")
	bCrt, bKey := b.Write(t, p.dir, "b")
	addr, strict := freeAddr(t), freeAddr(t)
	startProxy(t, fmt.Sprintf(`
server {
    listen %[1]s ssl http2;
    server_name a.test;
    ssl_certificate %[2]s;
    ssl_certificate_key %[3]s;
    location / { return 200 "a"; }
}
server {
    listen %[1]s ssl http2;
    server_name b.test;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    location / { return 200 "b"; }
}
server {
    listen %[6]s ssl http2 default_server;
    ssl_reject_handshake on;
}
server {
    listen %[6]s ssl http2;
    server_name b.test;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    location / { return 200 "b"; }
}
`, addr, aCrt, aKey, bCrt, bKey, strict))
	for _, c := range []struct{ addr, sni, wantCN string }{
		{addr, "a.test", "a.test"}, {addr, "b.test", "b.test"}, {addr, "unknown.test", "a.test"},
		{strict, "b.test", "b.test"}, {strict, "unknown.test", ""},
	} {
		conn, err := tls.Dial("tcp", c.addr, &tls.Config{ServerName: c.sni, InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if c.wantCN == "" {
			if err == nil {
				conn.Close()
				t.Errorf("%s: handshake with SNI %s succeeded, want it rejected", c.addr, c.sni)
			} else if !strings.Contains(err.Error(), "unrecognized name") {
				t.Errorf("%s: handshake with SNI %s: %v, want the alert unrecognized_name", c.addr, c.sni, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("SNI %s: %v", c.sni, err)
			continue
		}
		cs := conn.ConnectionState()
		if got := cs.PeerCertificates[0].Subject.CommonName; got != c.wantCN {
			t.Errorf("SNI %s: certificate %s, want %s", c.sni, got, c.wantCN)
		}
		if cs.NegotiatedProtocol != "h2" {
			t.Errorf("SNI %s: ALPN %q, want h2", c.sni, cs.NegotiatedProtocol)
		}
		conn.Close()
	}
	// ssl_reject_handshake ends TLS 1.2 handshakes, and those without SNI,
	// with unrecognized_name too (nginx's ssl_reject_handshake.t).
	for _, c := range []struct {
		sni string
		max uint16
	}{{"unknown.test", tls.VersionTLS12}, {"", tls.VersionTLS13}, {"", tls.VersionTLS12}} {
		conn, err := tls.Dial("tcp", strict, &tls.Config{ServerName: c.sni, InsecureSkipVerify: true, MaxVersion: c.max})
		if err == nil {
			conn.Close()
			t.Errorf("SNI %q, %s: handshake succeeded, want it rejected", c.sni, tls.VersionName(c.max))
		} else if !strings.Contains(err.Error(), "unrecognized name") {
			t.Errorf("SNI %q, %s: %v, want the alert unrecognized_name", c.sni, tls.VersionName(c.max), err)
		}
	}
}

// TestMisdirectedRequest: nginx's rule (ngx_http_set_virtual_server) on a
// TLS connection whose SNI named a server: a request whose host names
// another name, whose server verifies client certificates, gets 421
// Misdirected Request; a gRPC call gets PERMISSION_DENIED from gproxy.
// Without client verification in the host's server, or when SNI named no
// server, the host chooses the server as usual.
func TestMisdirectedRequest(t *testing.T) {
	p := newPKI(t)
	a := tlstest.New(t, p.ca, tlstest.Options{CN: "a.test"})
	b := tlstest.New(t, p.ca, tlstest.Options{CN: "b.test"})
	aCrt, aKey := a.Write(t, p.dir, "a")
	bCrt, bKey := b.Write(t, p.dir, "b")
	addr := freeAddr(t)
	startProxy(t, fmt.Sprintf(`
server {
    listen %[1]s ssl http2;
    server_name a.test;
    ssl_certificate %[2]s;
    ssl_certificate_key %[3]s;
    location / { return 200 "a"; }
}
server {
    listen %[1]s ssl http2;
    server_name b.test;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    ssl_verify_client optional;
    ssl_client_certificate %[6]s;
    location / { return 200 "b"; }
}
`, addr, aCrt, aKey, bCrt, bKey, p.caPath))
	for _, c := range []struct {
		sni, host string
		want      string // status line's code and body
	}{
		{"a.test", "a.test", "200 a"},
		{"a.test", "b.test", "421"},
		{"a.test", "B.Test:8443", "421"},
		{"b.test", "b.test:8443", "200 b"},
		{"b.test", "a.test", "200 a"},       // a.test verifies no certificate
		{"unknown.test", "b.test", "200 b"}, // SNI named no server
	} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: c.sni, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Errorf("SNI %s: %v", c.sni, err)
			continue
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", c.host)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("SNI %s, Host %s: %v", c.sni, c.host, err)
			conn.Close()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		got := fmt.Sprint(resp.StatusCode)
		if resp.StatusCode == 200 {
			got += " " + string(body)
		}
		if got != c.want {
			t.Errorf("SNI %s, Host %s: %s, want %s", c.sni, c.host, got, c.want)
		}
	}
	// grpc-go refuses an authority other than its TLS server name, so the
	// test does TLS itself.
	dialSNI := func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{Config: &tls.Config{RootCAs: p.ca.Pool(), ServerName: "a.test", NextProtos: []string{"h2"}}}
		return d.DialContext(ctx, "tcp", addr)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithContextDialer(dialSNI),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("b.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = testpb.NewTestServiceClient(cc).EmptyCall(testCtx(t, 20*time.Second), &testpb.Empty{})
	if !differs(t, "nginx", "a 421 reaches a gRPC client as an HTTP status") &&
		(status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "server name different")) {
		t.Errorf("gRPC call with SNI a.test for b.test: %v, want PermissionDenied", err)
	}
}

// TestUpstreamClientCertificate: a backend that requires a client
// certificate accepts gproxy's grpc_ssl_certificate, whose key is
// encrypted and opened with grpc_ssl_password_file; grpc_ssl_server_name
// sends grpc_ssl_name as SNI.
func TestUpstreamClientCertificate(t *testing.T) {
	p := newPKI(t)
	encKey := filepath.Join(p.dir, "client-enc.key")
	pwFile := filepath.Join(p.dir, "password")
	if err := os.WriteFile(encKey, p.client.EncryptedKeyPEM(t, "s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte("wrong\ns3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var sni atomic.Value
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{p.server.TLS()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.ca.Pool(),
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni.Store(h.ServerName)
			return nil, nil
		},
	})
	bs := startBackends(t, 1, grpc.Creds(creds))
	// An RSA client certificate too: its key signs with OpenSSL when
	// gproxy is built with cgo (package opensslrsa).
	rsaCrt, rsaKey := tlstest.New(t, p.ca, tlstest.Options{CN: "rsa-client", Client: true, RSA: true}).Write(t, p.dir, "rsa-client")
	addr, rsaAddr := freeAddr(t), freeAddr(t)
	startProxy(t, upstreamBlock("backends", bs)+fmt.Sprintf(`
server {
    listen %s http2;
    location / {
        grpc_pass grpcs://backends;
        grpc_ssl_name localhost;
        grpc_ssl_server_name on;
        grpc_ssl_verify on;
        grpc_ssl_trusted_certificate %s;
        grpc_ssl_certificate %s;
        grpc_ssl_certificate_key %s;
        grpc_ssl_password_file %s;
    }
}
server {
    listen %s http2;
    location / {
        grpc_pass grpcs://backends;
        grpc_ssl_name localhost;
        grpc_ssl_server_name on;
        grpc_ssl_certificate %s;
        grpc_ssl_certificate_key %s;
    }
}
`, addr, p.caPath, p.clientCrt, encKey, pwFile, rsaAddr, rsaCrt, rsaKey))
	if _, err := client(t, addr).EmptyCall(testCtx(t, 10*time.Second), &testpb.Empty{}); err != nil {
		t.Fatalf("call through an upstream requiring a client certificate: %v", err)
	}
	if _, err := client(t, rsaAddr).EmptyCall(testCtx(t, 10*time.Second), &testpb.Empty{}); err != nil {
		t.Errorf("call with an RSA client certificate: %v", err)
	}
	if got, _ := sni.Load().(string); got != "localhost" {
		t.Errorf("SNI sent upstream %q, want localhost", got)
	}
}

// TestUpstreamTLSWithVariables: grpc_pass grpcs:// with a variable target
// makes its TLS client per target.
func TestUpstreamTLSWithVariables(t *testing.T) {
	if *proxyFlag != "gproxy" {
		t.Skip("nginx needs a resolver for a variable target")
	}
	p := newPKI(t)
	bs := p.startTLSBackends(t, 1)
	addr := freeAddr(t)
	startProxy(t, fmt.Sprintf(`
server {
    listen %s http2;
    location / {
        grpc_pass grpcs://$http_x_target;
        grpc_ssl_verify on;
        grpc_ssl_name localhost;
        grpc_ssl_trusted_certificate %s;
    }
}
`, addr, p.caPath))
	ctx := metadata.AppendToOutgoingContext(testCtx(t, 10*time.Second), "x-target", bs[0].addr)
	if _, err := client(t, addr).EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Fatalf("call to grpcs://$http_x_target: %v", err)
	}
}
