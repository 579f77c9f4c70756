package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gproxy/gproxy/proxy/nginxtest"
)

// monitorConf serves gRPC to upstream "backends" and the three monitor
// locations, plus a probe location.
func monitorConf(port int, peers ...string) string {
	var servers strings.Builder
	for _, p := range peers {
		fmt.Fprintf(&servers, "server %s max_fails=1 fail_timeout=30s; ", p)
	}
	return fmt.Sprintf(`daemon off;
pid logs/gproxy.pid;
error_log logs/error.log notice;
events {}
http {
    access_log off;
    upstream backends { %s}
    server {
        listen 127.0.0.1:%d http2;
        location / { grpc_pass grpc://backends; }
        location = /healthz { return 200 "ok\n"; }
        location = /stub_status { stub_status; }
        location = /metrics { gproxy_metrics methods=on max=3; }
        location = /status { gproxy_status; }
    }
}
`, servers.String(), port)
}

// get fetches a URL with HTTP/1.1.
func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// parseStubStatus parses stub_status text as nginx-prometheus-exporter
// does (client.parseStubStats): five newline-separated parts, fields split
// on single spaces after trimming.
func parseStubStatus(text string) (vals [7]int64, err error) {
	parts := strings.Split(text, "\n")
	if len(parts) != 5 {
		return vals, fmt.Errorf("%d parts", len(parts))
	}
	active := strings.Split(strings.TrimSpace(parts[0]), " ")
	misc := strings.Split(strings.TrimSpace(parts[2]), " ")
	rww := strings.Split(strings.TrimSpace(parts[3]), " ")
	if len(active) != 3 || len(misc) != 3 || len(rww) != 6 {
		return vals, fmt.Errorf("field counts %d %d %d", len(active), len(misc), len(rww))
	}
	nums := []string{active[2], misc[0], misc[1], misc[2], rww[1], rww[3], rww[5]}
	for i, n := range nums {
		if vals[i], err = strconv.ParseInt(n, 10, 64); err != nil {
			return vals, err
		}
	}
	return vals, nil
}

// stubStatusShape is the line shape of nginx's stub_status, trailing
// spaces included.
var stubStatusShape = regexp.MustCompile(`^Active connections: \d+ \nserver accepts handled requests\n \d+ \d+ \d+ \nReading: \d+ Writing: \d+ Waiting: \d+ \n$`)

// TestMonitoring checks stub_status against nginx's text and the parser
// exporters use, and /metrics through the Prometheus text parser: peer
// calls by grpc-status, latency histogram, health, listener and reload
// counters, per-method metrics bounded by max=, and Go's own memory and
// goroutines.
func TestMonitoring(t *testing.T) {
	b1 := startGRPCBackend(t, "b1")
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	port := freePort(t)
	writeFile(t, conf, monitorConf(port, b1.addr))
	cmd, _ := foreground(t, "-p", prefix, "-c", conf)
	waitFor(t, "the pid file", func() bool { return readPIDFile(prefix+"logs/gproxy.pid") == cmd.Process.Pid })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		if _, err := client.EmptyCall(ctx, &testpb.Empty{}); err != nil {
			t.Fatal(err)
		}
	}
	// 5 distinct unknown methods: max=3 keeps 3 by name, the rest "other".
	for i := 0; i < 5; i++ {
		_ = cc.Invoke(ctx, fmt.Sprintf("/x.S/M%d", i), &testpb.Empty{}, &testpb.Empty{})
	}
	// A failed reload, counted.
	writeFile(t, conf, "events { bogus; }\n")
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the failed reload", func() bool { return fileContains(prefix+"logs/error.log", "reload failed") })
	writeFile(t, conf, monitorConf(port, b1.addr))

	code, ctype, body := get(t, base+"/stub_status")
	if code != 200 || ctype != "text/plain" || !stubStatusShape.MatchString(body) {
		t.Errorf("stub_status: %d %q\n%q", code, ctype, body)
	}
	vals, err := parseStubStatus(body)
	if err != nil {
		t.Errorf("exporter parse: %v", err)
	}
	if vals[0] < 2 || vals[1] < 2 || vals[1] != vals[2] || vals[3] < 16 || vals[5] < 1 {
		t.Errorf("stub_status values %v", vals)
	}
	// The same shape from a real nginx.
	_, addr := nginxtest.Start(t, `server { listen {ADDR}; location = /s { stub_status; } }`)
	_, ngxType, ngxBody := get(t, "http://"+addr+"/s")
	if !stubStatusShape.MatchString(ngxBody) || ngxType != ctype {
		t.Errorf("nginx's stub_status differs in shape: %q %q", ngxType, ngxBody)
	}

	code, _, body = get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, body)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f := fams[name]
		if f == nil {
			return 0, false
		}
	next:
		for _, m := range f.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			case m.Summary != nil:
				return float64(m.Summary.GetSampleCount()), true
			}
		}
		return 0, false
	}
	peer := map[string]string{"upstream": "backends", "peer": b1.addr}
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"gproxy_upstream_peer_calls_total", map[string]string{"upstream": "backends", "peer": b1.addr, "grpc_status": "0"}, 10},
		{"gproxy_upstream_peer_calls_total", map[string]string{"upstream": "backends", "peer": b1.addr, "grpc_status": "12"}, 5},
		{"gproxy_upstream_peer_call_duration_seconds", peer, 15},
		{"gproxy_upstream_peer_up", peer, 1},
		{"gproxy_upstream_peer_active_streams", peer, 0},
		{"gproxy_upstream_peer_retries_total", peer, 0},
		{"gproxy_listener_connections_accepted_total", map[string]string{"listener": fmt.Sprintf("tcp 127.0.0.1:%d", port)}, 2},
		{"gproxy_listener_streams_total", map[string]string{"listener": fmt.Sprintf("tcp 127.0.0.1:%d", port)}, 16},
		{"gproxy_reloads_total", map[string]string{"result": "failed"}, 1},
		{"gproxy_grpc_method_calls_total", map[string]string{"service": "grpc.testing.TestService", "method": "EmptyCall", "grpc_status": "0"}, 10},
		{"gproxy_grpc_method_calls_total", map[string]string{"service": "other", "method": "other"}, 3},
		{"go_goroutines", nil, 1},
		{"go_memstats_heap_alloc_bytes", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
	}
	for _, c := range checks {
		if v, ok := value(c.name, c.labels); !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v), want >= %v", c.name, c.labels, v, ok, c.min)
		}
	}
	methods := 0
	for _, m := range fams["gproxy_grpc_method_call_duration_seconds"].GetMetric() {
		_ = m
		methods++
	}
	if methods != 4 { // EmptyCall, two of M0..M4, and other (max=3)
		t.Errorf("%d method series, want 4 (max=3 plus other)", methods)
	}
}

// TestStatusPageChromium loads the live status page in headless Chromium:
// it shows the configured peers, and after a backend is killed and calls
// to it fail, that peer turns unhealthy on the page. It keeps a
// screenshot (status-page.png in the test's directory, logged).
func TestStatusPageChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed")
	}
	b1, b2 := startGRPCBackend(t, "b1"), startGRPCBackend(t, "b2")
	prefix := newPrefix(t)
	conf := filepath.Join(prefix, "gproxy.conf")
	port := freePort(t)
	writeFile(t, conf, monitorConf(port, b1.addr, b2.addr))
	cmd, _ := foreground(t, "-p", prefix, "-c", conf)
	waitFor(t, "the pid file", func() bool { return readPIDFile(prefix+"logs/gproxy.pid") == cmd.Process.Pid })
	url := fmt.Sprintf("http://127.0.0.1:%d/status", port)

	cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	calls := func(n int) {
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = client.EmptyCall(ctx, &testpb.Empty{})
			cancel()
		}
	}
	calls(20)

	dom := chromiumDOM(t, chromium, url, prefix)
	for _, b := range []*grpcBackend{b1, b2} {
		if !regexp.MustCompile(`data-peer="`+regexp.QuoteMeta(b.addr)+`"[^>]*>.*?<td class="state">up</td>`).MatchString(dom) &&
			!strings.Contains(dom, `<tr class="up" data-peer="`+b.addr+`">`) {
			t.Errorf("peer %s not shown up on the page:\n%s", b.addr, dom)
		}
	}

	b2.srv.Stop() // killed: connections refused from now on
	calls(20)     // some land on b2, fail, and mark it unavailable (max_fails=1)
	dom = chromiumDOM(t, chromium, url, prefix)
	if !strings.Contains(dom, `<tr class="unhealthy" data-peer="`+b2.addr+`">`) {
		t.Errorf("killed peer %s not unhealthy on the page:\n%s", b2.addr, dom)
	}
	if !strings.Contains(dom, `<tr class="up" data-peer="`+b1.addr+`">`) {
		t.Errorf("live peer %s not up on the page:\n%s", b1.addr, dom)
	}
	shot := filepath.Join(t.TempDir(), "status-page.png")
	chromiumRun(t, chromium, prefix, "--screenshot="+shot, "--window-size=1000,600", url)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	} else {
		t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
		if dir := os.Getenv("GPROXY_SCREENSHOT_DIR"); dir != "" {
			data, _ := os.ReadFile(shot)
			_ = os.WriteFile(filepath.Join(dir, "status-page.png"), data, 0o644)
		}
	}
}

// chromiumDOM loads url in headless Chromium, lets its script poll for a
// few seconds, and returns the DOM.
func chromiumDOM(t *testing.T, chromium, url, prefix string) string {
	t.Helper()
	return chromiumRun(t, chromium, prefix, "--dump-dom", url)
}

func chromiumRun(t *testing.T, chromium, prefix string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir=" + filepath.Join(prefix, "chromium"), "--virtual-time-budget=3000"}, args...)
	c := exec.CommandContext(ctx, chromium, all...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	return out.String()
}
