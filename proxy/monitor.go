package proxy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/http2/hpack"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy/h2"
	"github.com/gproxy/gproxy/upstream"
)

// serverStats are the process-wide counters of nginx's stub_status, kept
// with atomic operations on the connection and stream paths.
type serverStats struct {
	accepts  atomic.Uint64 // connections accepted
	handled  atomic.Uint64 // accepted and not closed at once for worker_connections
	requests atomic.Uint64 // HTTP/2 streams and HTTP/1 requests

	reloadsOK, reloadsFailed atomic.Uint64
}

// listenerStats are one listening socket's counters; a reload that keeps
// the socket keeps them.
type listenerStats struct {
	accepted atomic.Uint64
	active   atomic.Int64
	streams  atomic.Uint64
}

// ReloadResult counts a reload attempt for gproxy_reloads_total; the
// command line calls it for every HUP, whatever stage failed.
func (s *Server) ReloadResult(err error) {
	if err != nil {
		s.stats.reloadsFailed.Add(1)
	} else {
		s.stats.reloadsOK.Add(1)
	}
}

// monitorResponse answers a request to a monitor location.
func (s *Server) monitorResponse(m *config.Monitor, path string, h1 bool) (code int, ctype string, body []byte) {
	switch m.Kind {
	case "stub_status":
		return 200, "text/plain", s.stubStatus()
	case "metrics":
		return s.metricsText()
	case "status":
		if strings.HasSuffix(strings.SplitN(path, "?", 2)[0], ".json") || strings.Contains(path, "format=json") {
			b, _ := json.Marshal(s.statusJSON())
			return 200, "application/json", b
		}
		return 200, "text/html; charset=utf-8", statusPage
	}
	return 404, "text/plain", []byte("not found\n")
}

// stubStatus is nginx's stub_status text, byte for byte in shape:
//
//	Active connections: 2
//	server accepts handled requests
//	 7 7 9
//	Reading: 0 Writing: 1 Waiting: 1
//
// Writing counts requests in progress (streams being proxied, and this
// one), as nginx counts requests; Reading is 0, since an HTTP/2 request's
// headers arrive in one piece; Waiting is the connections left.
func (s *Server) stubStatus() []byte {
	active := s.nconns.Load()
	writing := int64(1) // this request, as nginx counts it
	rc := s.cur.Load()
	for _, g := range rc.groups {
		for _, p := range g.Peers() {
			writing += p.Active()
		}
	}
	waiting := max(active-writing, 0)
	return fmt.Appendf(nil, "Active connections: %d \nserver accepts handled requests\n %d %d %d \nReading: %d Writing: %d Waiting: %d \n",
		active, s.stats.accepts.Load(), s.stats.handled.Load(), s.stats.requests.Load(), 0, writing, waiting)
}

// serveMonitorH1 answers an HTTP/1 request to a monitor location.
func (s *Server) serveMonitorH1(w http.ResponseWriter, req *http.Request, m *config.Monitor) (int, int) {
	code, ctype, body := s.monitorResponse(m, req.RequestURI, true)
	hd := w.Header()
	hd.Set("Server", "gproxy")
	hd.Set("Content-Type", ctype)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	if req.Method == http.MethodHead {
		return code, 0
	}
	n, _ := w.Write(body)
	return code, n
}

// serveMonitorH2 answers an HTTP/2 stream to a monitor location.
func (s *Server) serveMonitorH2(st *h2.Stream, m *config.Monitor, method, path string) []hpack.HeaderField {
	code, ctype, body := s.monitorResponse(m, path, false)
	fields := []hpack.HeaderField{
		{Name: ":status", Value: strconv.Itoa(code)},
		{Name: "server", Value: "gproxy"},
		{Name: "content-type", Value: ctype},
		{Name: "content-length", Value: strconv.Itoa(len(body))},
		{Name: "cache-control", Value: "no-cache"},
	}
	if method == "HEAD" || len(body) == 0 {
		st.WriteHeaders(fields, true)
		return fields
	}
	st.WriteHeaders(fields, false)
	st.WriteData(body, true)
	return fields
}

// metricsText is the Prometheus text exposition of the registry.
func (s *Server) metricsText() (int, string, []byte) {
	rec := &bufferWriter{h: http.Header{}}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	s.metricsHandler().ServeHTTP(rec, req)
	code := rec.code
	if code == 0 {
		code = 200
	}
	return code, rec.h.Get("Content-Type"), rec.buf.Bytes()
}

// bufferWriter is an http.ResponseWriter into memory, so that one handler
// serves both HTTP/1 and HTTP/2 (which gproxy frames itself).
type bufferWriter struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (b *bufferWriter) Header() http.Header         { return b.h }
func (b *bufferWriter) WriteHeader(code int)        { b.code = code }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }

// metricsHandler is the promhttp handler of the server's registry, made
// once.
func (s *Server) metricsHandler() http.Handler {
	s.metricsOnce.Do(func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{s: s})
		s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	})
	return s.metrics
}

var (
	descPeerCalls    = prometheus.NewDesc("gproxy_upstream_peer_calls_total", "Calls that ended on an upstream peer, by grpc-status (\"none\": ended without one).", []string{"upstream", "peer", "grpc_status"}, nil)
	descPeerActive   = prometheus.NewDesc("gproxy_upstream_peer_active_streams", "Streams in progress on an upstream peer.", []string{"upstream", "peer"}, nil)
	descPeerLatency  = prometheus.NewDesc("gproxy_upstream_peer_call_duration_seconds", "Time from picking the peer to the end of the call.", []string{"upstream", "peer"}, nil)
	descPeerUp       = prometheus.NewDesc("gproxy_upstream_peer_up", "1 when the peer takes calls, 0 when down or marked unavailable (max_fails, health checks).", []string{"upstream", "peer"}, nil)
	descPeerFailures = prometheus.NewDesc("gproxy_upstream_peer_failures_total", "Attempts counted as failures for max_fails.", []string{"upstream", "peer"}, nil)
	descPeerRetries  = prometheus.NewDesc("gproxy_upstream_peer_retries_total", "Attempts on the peer passed on to another peer (grpc_next_upstream).", []string{"upstream", "peer"}, nil)
	descPeerEjected  = prometheus.NewDesc("gproxy_upstream_peer_ejections_total", "Times outlier detection took the peer out.", []string{"upstream", "peer"}, nil)
	descLnAccepted   = prometheus.NewDesc("gproxy_listener_connections_accepted_total", "Client connections accepted on a listener.", []string{"listener"}, nil)
	descLnActive     = prometheus.NewDesc("gproxy_listener_connections_active", "Client connections open on a listener.", []string{"listener"}, nil)
	descLnStreams    = prometheus.NewDesc("gproxy_listener_streams_total", "HTTP/2 streams and HTTP/1 requests received on a listener.", []string{"listener"}, nil)
	descReloads      = prometheus.NewDesc("gproxy_reloads_total", "Configuration reloads (HUP), by result.", []string{"result"}, nil)
	descConns        = prometheus.NewDesc("gproxy_connections_active", "Client connections open (stub_status's Active connections).", nil, nil)
	descAccepts      = prometheus.NewDesc("gproxy_connections_accepted_total", "Client connections accepted (stub_status's accepts).", nil, nil)
	descRequests     = prometheus.NewDesc("gproxy_requests_total", "Requests (HTTP/2 streams, HTTP/1 requests) received (stub_status's requests).", nil, nil)
	descMethodCalls  = prometheus.NewDesc("gproxy_grpc_method_calls_total", "Proxied calls by gRPC service, method and grpc-status (gproxy_metrics methods=on; beyond max= methods count as \"other\").", []string{"service", "method", "grpc_status"}, nil)
	descMethodTime   = prometheus.NewDesc("gproxy_grpc_method_call_duration_seconds", "Duration of proxied calls by gRPC service and method.", []string{"service", "method"}, nil)
)

// collector reads the atomic counters of the running configuration when
// Prometheus scrapes; nothing on the stream path knows about Prometheus.
type collector struct{ s *Server }

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	rc := s.cur.Load()
	for _, g := range rc.sortedGroups() {
		for _, p := range g.Peers() {
			snap := p.Stats().Snapshot()
			lv := []string{g.Name, p.Addr}
			for code, n := range snap.Calls {
				if n == 0 {
					continue
				}
				label := "none"
				if code <= 16 {
					label = grpcStatusString(code)
				}
				ch <- prometheus.MustNewConstMetric(descPeerCalls, prometheus.CounterValue, float64(n), g.Name, p.Addr, label)
			}
			ch <- prometheus.MustNewConstMetric(descPeerActive, prometheus.GaugeValue, float64(p.Active()), lv...)
			buckets := make(map[float64]uint64, len(upstream.LatencyBuckets))
			for i, b := range upstream.LatencyBuckets {
				buckets[b] = snap.Buckets[i]
			}
			ch <- prometheus.MustNewConstHistogram(descPeerLatency, snap.Buckets[len(snap.Buckets)-1], snap.LatencySum.Seconds(), buckets, lv...)
			ch <- prometheus.MustNewConstMetric(descPeerUp, prometheus.GaugeValue, boolFloat(peerUp(p)), lv...)
			ch <- prometheus.MustNewConstMetric(descPeerFailures, prometheus.CounterValue, float64(snap.Failures), lv...)
			ch <- prometheus.MustNewConstMetric(descPeerRetries, prometheus.CounterValue, float64(snap.Retries), lv...)
			ch <- prometheus.MustNewConstMetric(descPeerEjected, prometheus.CounterValue, float64(snap.Ejections), lv...)
		}
	}
	s.mu.Lock()
	lns := append([]*listener(nil), s.listeners...)
	s.mu.Unlock()
	for _, ln := range lns {
		ch <- prometheus.MustNewConstMetric(descLnAccepted, prometheus.CounterValue, float64(ln.stats.accepted.Load()), ln.key)
		ch <- prometheus.MustNewConstMetric(descLnActive, prometheus.GaugeValue, float64(ln.stats.active.Load()), ln.key)
		ch <- prometheus.MustNewConstMetric(descLnStreams, prometheus.CounterValue, float64(ln.stats.streams.Load()), ln.key)
	}
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(s.stats.reloadsOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(s.stats.reloadsFailed.Load()), "failed")
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(s.nconns.Load()))
	ch <- prometheus.MustNewConstMetric(descAccepts, prometheus.CounterValue, float64(s.stats.accepts.Load()))
	ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(s.stats.requests.Load()))
	s.methods.collect(ch)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// peerUp reports whether a peer takes calls now.
func peerUp(p *upstream.Peer) bool {
	return !p.Down && !p.Unavailable() && p.Healthy() && !p.Ejected()
}

// sortedGroups lists the running groups by name, for stable output.
func (rc *running) sortedGroups() []*upstream.Group {
	out := make([]*upstream.Group, 0, len(rc.groups))
	for _, g := range rc.groups {
		out = append(out, g)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Name < out[j-1].Name; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// methodStats counts proxied calls per gRPC method when a gproxy_metrics
// location asks for it. At most max methods are counted by name; the rest
// share one "other" entry, so a client inventing paths cannot grow it.
type methodStats struct {
	on    atomic.Bool
	max   atomic.Int64
	m     sync.Map // "/service/method" -> *methodCounter
	n     atomic.Int64
	other methodCounter
}

// methodCounter is one method's counters.
type methodCounter struct {
	service, method string
	calls           [maxStatusLabel + 1]atomic.Uint64 // by grpc-status; the last is "none"
	count           atomic.Uint64
	sumNanos        atomic.Int64
}

const maxStatusLabel = 17

// lookup returns the counter of a request path, or nil when per-method
// metrics are off.
func (ms *methodStats) lookup(path string) *methodCounter {
	if !ms.on.Load() {
		return nil
	}
	if v, ok := ms.m.Load(path); ok {
		return v.(*methodCounter)
	}
	svc, meth, ok := splitGRPCPath(path)
	if !ok || ms.n.Load() >= ms.max.Load() {
		return &ms.other
	}
	v, loaded := ms.m.LoadOrStore(path, &methodCounter{service: svc, method: meth})
	if !loaded {
		ms.n.Add(1)
	}
	return v.(*methodCounter)
}

// splitGRPCPath splits "/pkg.Service/Method".
func splitGRPCPath(path string) (svc, meth string, ok bool) {
	if len(path) < 4 || path[0] != '/' || len(path) > 256 {
		return "", "", false
	}
	svc, meth, ok = strings.Cut(path[1:], "/")
	return svc, meth, ok && svc != "" && meth != "" && !strings.ContainsAny(meth, "/?")
}

// observe counts one finished call.
func (mc *methodCounter) observe(grpcStatus int, d time.Duration) {
	if grpcStatus < 0 || grpcStatus > 16 {
		grpcStatus = maxStatusLabel
	}
	mc.calls[grpcStatus].Add(1)
	mc.count.Add(1)
	mc.sumNanos.Add(int64(d))
}

func (ms *methodStats) collect(ch chan<- prometheus.Metric) {
	if !ms.on.Load() {
		return
	}
	emit := func(mc *methodCounter, svc, meth string) {
		for code := range mc.calls {
			n := mc.calls[code].Load()
			if n == 0 {
				continue
			}
			label := "none"
			if code <= 16 {
				label = grpcStatusString(code)
			}
			ch <- prometheus.MustNewConstMetric(descMethodCalls, prometheus.CounterValue, float64(n), svc, meth, label)
		}
		if c := mc.count.Load(); c > 0 {
			ch <- prometheus.MustNewConstSummary(descMethodTime, c, time.Duration(mc.sumNanos.Load()).Seconds(), nil, svc, meth)
		}
	}
	ms.m.Range(func(_, v any) bool {
		mc := v.(*methodCounter)
		emit(mc, mc.service, mc.method)
		return true
	})
	emit(&ms.other, "other", "other")
}

// configureMethods turns per-method metrics on or off for a running
// configuration: on when any gproxy_metrics location says methods=on, with
// the largest max= of those.
func (ms *methodStats) configure(cfg *config.Config) {
	on, limit := false, 0
	var walk func([]*config.Location)
	walk = func(locs []*config.Location) {
		for _, l := range locs {
			if m := l.Monitor; m != nil && m.Kind == "metrics" && m.Methods {
				on = true
				limit = max(limit, m.MaxMethods)
			}
			walk(l.Locations)
		}
	}
	if cfg.HTTP != nil {
		for _, srv := range cfg.HTTP.Servers {
			walk(srv.Locations)
		}
	}
	ms.max.Store(int64(limit))
	ms.on.Store(on)
}

// statusPage is the live status page (gproxy_status): self-contained HTML
// with inline script polling the JSON form of the same location.
//
//go:embed status.html
var statusPage []byte

// statusDoc is the JSON the status page polls.
type statusDoc struct {
	Time        time.Time        `json:"time"`
	Connections int64            `json:"connections"`
	Requests    uint64           `json:"requests"`
	Upstreams   []statusUpstream `json:"upstreams"`
}

type statusUpstream struct {
	Name  string       `json:"name"`
	Peers []statusPeer `json:"peers"`
}

type statusPeer struct {
	Addr       string  `json:"addr"`
	State      string  `json:"state"` // "up", "unhealthy", "ejected", "down"
	Active     int64   `json:"active"`
	Calls      uint64  `json:"calls"`
	Errors     uint64  `json:"errors"` // calls ended with a non-OK grpc-status or none
	Fails      uint64  `json:"fails"`
	LatencySum float64 `json:"latency_sum_seconds"`
}

func (s *Server) statusJSON() statusDoc {
	rc := s.cur.Load()
	doc := statusDoc{Time: time.Now(), Connections: s.nconns.Load(), Requests: s.stats.requests.Load()}
	for _, g := range rc.sortedGroups() {
		u := statusUpstream{Name: g.Name}
		for _, p := range g.Peers() {
			snap := p.Stats().Snapshot()
			state := "up"
			switch {
			case p.Down:
				state = "down"
			case p.Unavailable() || !p.Healthy():
				state = "unhealthy"
			case p.Ejected():
				state = "ejected"
			}
			total := snap.Total()
			u.Peers = append(u.Peers, statusPeer{
				Addr: p.Addr, State: state, Active: p.Active(), Calls: total,
				Errors: total - snap.Calls[0], Fails: snap.Failures, LatencySum: snap.LatencySum.Seconds(),
			})
		}
		doc.Upstreams = append(doc.Upstreams, u)
	}
	return doc
}
