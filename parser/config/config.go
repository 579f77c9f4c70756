// Package config holds gproxy's typed, checked configuration: what an
// nginx.conf means once the parser has read, expanded, validated and merged
// it. It has no behaviour of its own; proxy and upstream build their running
// state from it. Nothing in here names a raw directive except in comments and
// in Pos, which says where a value came from so later stages can report it.
package config

import (
	"regexp"
	"time"
)

// Pos is where a directive stands in the configuration files.
type Pos struct {
	File string
	Line int
}

// Config is one whole configuration: the main context, events and http.
type Config struct {
	// File is the absolute path of the main configuration file.
	File string
	// Files lists every file read, main file first, in reading order, with
	// its bytes, for `gproxy -T`.
	Files []SourceFile

	WorkerProcesses    int // 0 means "auto" (one per CPU)
	WorkerRlimitNofile int // 0 means unset
	ErrorLogs          []Log
	PID                string // absolute path; "" when `pid off;`
	Daemon             bool
	// User and Group are `user`: the account gproxy switches to once its
	// listeners and logs are open. Empty when not set, or when gproxy
	// does not run as root (then nginx ignores the directive too).
	User, Group string
	// WorkerShutdownTimeout bounds a graceful stop (QUIT); 0 when not
	// set (gproxy then uses its own default, see cmd/gproxy).
	WorkerShutdownTimeout time.Duration

	WorkerConnections int // events { worker_connections }

	// HTTP is nil when the configuration has no http block.
	HTTP *HTTP
}

// SourceFile is one configuration file as read from disk.
type SourceFile struct {
	Path string
	Data []byte
}

// Log is one error_log or access_log destination.
type Log struct {
	Path   string // absolute path, "stderr", "syslog:..." or "off" for access_log off
	Level  string // error_log level (debug info notice warn error crit alert emerg); "" for access logs
	Format string // access_log format name ("combined" when not given)
	// Buffer (bytes), Flush and If are access_log's buffer=, flush= and
	// if= parameters: write through a buffer of that size, flushed at
	// least every Flush; log a request only when If is non-empty and not
	// "0". Zero values mean unbuffered, and log every request.
	Buffer int
	Flush  time.Duration
	If     *Template
	// Syslog is the parsed destination when Path starts with "syslog:",
	// nil otherwise.
	Syslog *Syslog
	Pos    Pos
}

// Syslog is a "syslog:server=...,facility=...,severity=...,tag=...,
// nohostname" destination of error_log or access_log, checked and resolved
// as nginx does while reading its configuration. It is comparable: two
// equal values name the same destination.
type Syslog struct {
	// Server is the server= value as written ("127.0.0.1", "[::1]:5514",
	// "unix:/dev/log"), for messages.
	Server string
	// Network is "udp" or "unixgram". Addr is where messages go: the first
	// address Server resolved to when the configuration was read, with
	// its port (514 unless given), or the socket's path.
	Network, Addr string
	// Facility is 0 (kern) to 23 (local7); local7 unless facility= is
	// given.
	Facility int
	// Severity is 0 (emerg) to 7 (debug); info unless severity= is given.
	// It applies to access logs: an error log message carries the
	// severity of its own level, as in nginx.
	Severity int
	// Tag is the TAG field: "nginx" unless tag= is given ("tag=" alone
	// gives an empty tag, as in nginx).
	Tag string
	// NoHostname leaves the HOSTNAME field out (nohostname).
	NoHostname bool
}

// HTTP is the http block.
type HTTP struct {
	LogFormats map[string]*LogFormat // "combined" is always present
	Upstreams  []*Upstream           // in order of definition
	Servers    []*Server             // in order of definition
	Maps       []*Map

	// UpstreamByName indexes Upstreams; implicit upstreams created for
	// `grpc_pass host:port` are not listed here.
	UpstreamByName map[string]*Upstream

	// LimitReqZones and LimitConnZones are the limit_req_zone and
	// limit_conn_zone blocks, in order of definition.
	LimitReqZones  []*LimitReqZone
	LimitConnZones []*LimitConnZone
}

// LogFormat is a named log_format.
type LogFormat struct {
	Name   string
	Escape string // "default", "json" or "none"
	Format Template
	Pos    Pos
}

// Template is a string with nginx variables, split at parse time so the hot
// path only concatenates.
type Template struct {
	Raw   string
	Parts []TemplatePart
}

// TemplatePart is a literal or a variable reference, never both.
type TemplatePart struct {
	Literal string
	Var     string // variable name without '$', e.g. "remote_addr", "http_user_agent"
}

// Map is a `map $source $target { ... }` block.
type Map struct {
	Source    Template
	Target    string // variable name without '$'
	Hostnames bool
	Volatile  bool
	Default   Template
	Exact     map[string]Template
	Regexes   []MapRegex // in order of appearance
	Pos       Pos
}

// MapRegex is one regular-expression entry of a map.
type MapRegex struct {
	Regex *regexp.Regexp
	Value Template
}

// Upstream is an upstream block, or the implicit group behind
// `grpc_pass host:port`.
type Upstream struct {
	Name     string
	Implicit bool // made from a grpc_pass address, not an upstream block
	Servers  []UpstreamServer
	Balance  Balance

	Keepalive         int           // idle connections kept per worker; 0 = not set
	KeepaliveTime     time.Duration // default 1h
	KeepaliveTimeout  time.Duration // default 60s
	KeepaliveRequests int           // default 1000

	// Resolver and ResolverTimeout are set by resolver directives inside
	// the upstream block (nginx >= 1.27.3); nil means the one of the http
	// level, if any.
	Resolver        *Resolver
	ResolverTimeout time.Duration

	// Zone is the zone directive's name, "" without one. gproxy is one
	// process, so a group's state is shared already; the zone only
	// satisfies the rules that require one (resolve, health_check).
	Zone string
	// Outlier is gproxy_outlier_detection (a gproxy extension); nil when
	// the upstream does not set it.
	Outlier *OutlierDetection

	Pos Pos
}

// OutlierDetection is gproxy_outlier_detection: passive ejection driven by
// gRPC status, after Envoy's outlier_detection. A peer whose streams end
// Consecutive times in a row in UNAVAILABLE or INTERNAL (or fail to
// connect) is ejected for BaseEjectionTime times the number of times it
// has been ejected, at most MaxEjectionTime; at most MaxEjectionPercent of
// the group's peers are ejected at once. Each Interval a peer spends
// without being ejected lowers its ejection count by one.
type OutlierDetection struct {
	Consecutive        int           // default 5
	Interval           time.Duration // default 10s
	BaseEjectionTime   time.Duration // default 30s
	MaxEjectionTime    time.Duration // default 300s
	MaxEjectionPercent int           // default 10
	Pos                Pos
}

// HealthCheck is an NGINX Plus `health_check type=grpc ...` in a location:
// active gRPC health checks (grpc.health.v1.Health/Check) of the servers of
// the location's grpc_pass group.
type HealthCheck struct {
	Interval time.Duration // interval=, default 5s
	Jitter   time.Duration // jitter=, default 0
	Fails    int           // fails=, default 1
	Passes   int           // passes=, default 1
	Port     int           // port=, 0 = the server's own port
	// GRPCService is grpc_service= (the HealthCheckRequest's service;
	// "" asks about the server as a whole).
	GRPCService string
	// GRPCStatus is grpc_status=: a non-zero gRPC status that counts as
	// healthy (for servers without the health service, e.g. 12
	// UNIMPLEMENTED); -1 when not given.
	GRPCStatus int
	// Mandatory: a new server is unhealthy until its first check passes.
	// Persistent (with Mandatory): after a reload a server keeps the state
	// it had.
	Mandatory, Persistent bool
	Pos                   Pos
}

// Resolver is a `resolver` directive: DNS servers for names resolved at
// run time (upstream servers with the resolve parameter).
type Resolver struct {
	Addresses []string      // "ip:port"
	Valid     time.Duration // 0 = use the TTL of the answer
	IPv6      bool          // look up AAAA records too (default on)
	Pos       Pos
}

// Balance is the load-balancing method of an upstream.
type Balance struct {
	Method     string // "round_robin" (default), "least_conn", "ip_hash", "hash", "random"
	Key        Template
	Consistent bool   // hash ... consistent
	Two        bool   // random two
	TwoMethod  string // random two least_conn -> "least_conn"
	// LeastTime is least_time's measure (NGINX Plus): "header" (time to
	// the response header) or "last_byte" (to the end of the response);
	// Inflight counts streams still running too.
	LeastTime string
	Inflight  bool
	Pos       Pos
}

// UpstreamServer is one server line of an upstream block.
type UpstreamServer struct {
	// Address is "host:port" (host may be a name or an IP, IPv6 in
	// brackets) or "unix:/path".
	Address     string
	Weight      int // default 1
	MaxConns    int // 0 = unlimited
	MaxFails    int // default 1
	FailTimeout time.Duration
	Backup      bool
	Down        bool
	Resolve     bool
	Service     string
	Pos         Pos
}

// Server is a virtual server.
type Server struct {
	Listens []Listen
	Names   []ServerName // in order of appearance; empty means ""
	// HTTP2 is the `http2 on|off` directive (nginx >= 1.25.1); it makes
	// every listen of this server speak HTTP/2.
	HTTP2 bool

	// Rewrite holds server-level `return` and `if` in order; they run
	// before a location is chosen.
	Rewrite []RewriteStep

	Locations []*Location // top-level locations, in order of appearance

	// Settings are the server-level values, already merged from http.
	// A request that matches no location uses them.
	Settings Settings

	Pos Pos
}

// Listen is one listen directive.
//
// Bind and every socket option (ReusePort, Backlog, IPv6Only, DualStack,
// Deferred, RcvBuf, SndBuf, FastOpen, SoKeepalive) give the address a
// socket of its own even beside a wildcard listen on the same port, as
// nginx's implied bind does; nginx accepts socket options on one listen
// per address only.
type Listen struct {
	Network       string // "tcp" or "unix"
	Address       string // "host:port" ("0.0.0.0:80", "[::1]:8080") or socket path
	HTTP2         bool
	SSL           bool
	DefaultServer bool
	ReusePort     bool
	Backlog       int // 0 = system default (511 on Linux for nginx)
	// IPv6Only is ipv6only=on. An IPv6 socket is IPv6-only unless
	// DualStack (ipv6only=off) is set: nginx's default is on.
	IPv6Only  bool
	DualStack bool // ipv6only=off: an IPv6 wildcard accepts IPv4 too
	// Bind is the bind parameter: bind(2) this address separately rather
	// than let a wildcard listen on its port serve it.
	Bind bool
	// Deferred is the deferred parameter: TCP_DEFER_ACCEPT (1 s, as
	// nginx), so accept waits for the client's first bytes.
	Deferred bool
	// RcvBuf and SndBuf are rcvbuf= and sndbuf= in bytes (SO_RCVBUF,
	// SO_SNDBUF); 0 = not given. rcvbuf=0, which asks the kernel for its
	// minimum, is stored as 1, which the kernel rounds up alike.
	RcvBuf int
	SndBuf int
	// FastOpen is fastopen=: the TCP_FASTOPEN queue length; 0 = not given
	// (fastopen=0 sets the kernel's default of no queue, the same thing).
	FastOpen    int
	SoKeepalive SoKeepalive
	Pos         Pos
}

// SoKeepalive is listen's so_keepalive parameter: TCP keepalive on the
// accepted connections. The zero value (not given) leaves SO_KEEPALIVE
// off, as nginx does.
type SoKeepalive struct {
	Set      bool          // so_keepalive was given
	On       bool          // on, or [idle]:[interval]:[count]; false for off
	Idle     time.Duration // TCP_KEEPIDLE, whole seconds; 0 = the system's
	Interval time.Duration // TCP_KEEPINTVL, whole seconds; 0 = the system's
	Count    int           // TCP_KEEPCNT; 0 = the system's
}

// ServerName is one name of server_name.
type ServerName struct {
	Name  string         // as written, lower-cased
	Kind  NameKind       // how Name matches
	Regex *regexp.Regexp // for NameRegex
}

// NameKind says how a server name matches a host.
type NameKind int

// Kinds of server name, in nginx's order of precedence.
const (
	NameExact         NameKind = iota // example.com
	NameWildcardStart                 // *.example.com or .example.com
	NameWildcardEnd                   // mail.*
	NameRegex                         // ~^(www\.)?(?<d>.+)$
)

// LocationKind is a location's modifier.
type LocationKind int

// Location modifiers.
const (
	LocPrefix        LocationKind = iota // location /path
	LocExact                             // location = /path
	LocPrefixNoRegex                     // location ^~ /path
	LocRegex                             // location ~ re
	LocRegexCaseless                     // location ~* re
	LocNamed                             // location @name
)

// Location is one location block.
type Location struct {
	Kind  LocationKind
	Path  string         // the prefix, exact path, regex source or @name
	Regex *regexp.Regexp // for LocRegex and LocRegexCaseless (caseless compiled with (?i))

	Locations []*Location // nested, in order of appearance

	// Rewrite holds `return` and `if` of this location, in order.
	Rewrite []RewriteStep

	// GRPCPass is nil when this location does not proxy.
	GRPCPass *GRPCPass
	// HealthChecks are the location's health_check directives (NGINX
	// Plus), which check the servers of GRPCPass's group.
	HealthChecks []HealthCheck

	// Monitor is set when the location answers with gproxy's own state
	// (stub_status, gproxy_metrics, gproxy_status) instead of proxying.
	Monitor *Monitor
	// LimitExcept is the location's limit_except block; nil if none.
	LimitExcept *LimitExcept
	// Internal is the `internal` directive: only error_page (and other
	// internal redirects) reach this location; a client request for it
	// gets 404.
	Internal bool

	// Settings are this location's values, already merged from its
	// parents as nginx merges them.
	Settings Settings

	Pos Pos
}

// Monitor is a location that reports on gproxy itself.
type Monitor struct {
	// Kind is "stub_status" (nginx's text), "metrics" (Prometheus text
	// format) or "status" (the live HTML page and its JSON).
	Kind string
	// Methods turns on per gRPC service and method metrics
	// (gproxy_metrics methods=on); MaxMethods bounds how many distinct
	// methods are counted (the rest count as one "other").
	Methods    bool
	MaxMethods int
	Pos        Pos
}

// GRPCPass is a grpc_pass target.
type GRPCPass struct {
	Scheme   string    // "grpc" or "grpcs"
	Upstream *Upstream // the named upstream or an implicit one for host:port; nil with Target
	// Target is set when the target has variables (`grpc_pass
	// grpc://$backend`): per request, its value names an upstream block,
	// else an address host:port (an IP address) or unix:/path, as nginx
	// resolves it. The scheme prefix is not part of it.
	Target Template
	Pos    Pos
}

// RewriteStep is one directive of the rewrite module, run in order:
// exactly one field is set.
type RewriteStep struct {
	Return  *Return
	If      *If
	Set     *SetVar
	Rewrite *Rewrite
	Break   bool
}

// SetVar is `set $name value`.
type SetVar struct {
	Name  string // without '$'
	Value Template
	Pos   Pos
}

// Rewrite is `rewrite regex replacement [flag]`.
type Rewrite struct {
	Regex       *regexp.Regexp
	Replacement Template
	// Flag is "", "last", "break", "redirect" or "permanent". A
	// replacement starting with http://, https:// or $scheme redirects
	// (302) whatever the flag, as in nginx.
	Flag string
	Pos  Pos
}

// Return is `return code [text|URL];` or `return URL;`.
type Return struct {
	Code int      // 444 closes the connection
	Text Template // body text, or the redirect URL for 301 302 303 307 308
	Pos  Pos
}

// If is `if (condition) { ... }`.
type If struct {
	Cond IfCond
	Body []RewriteStep
	// Settings are the location's settings with those set inside the if
	// block applied (add_header, add_trailer, error_page, ...), as nginx
	// gives the body a location configuration of its own; nil when the
	// block sets nothing, or for if at server level.
	Settings *Settings
	// GRPCPass is a grpc_pass inside the block: when the condition holds,
	// the request is proxied there.
	GRPCPass *GRPCPass
	Pos      Pos
}

// IfCond is the parsed condition of an if block.
type IfCond struct {
	// Op is "" (variable is non-empty and not "0"), "=", "!=", "~", "~*",
	// "!~", "!~*".
	Op    string
	Left  Template
	Right Template       // for "=" and "!="
	Regex *regexp.Regexp // for the regex operators
}

// Settings are the values of the http, server and location levels that
// inherit downwards. After parsing, every Server and Location holds its
// effective values, so nothing downstream merges.
type Settings struct {
	ClientMaxBodySize int64 // bytes; 0 = unlimited; nginx default 1m
	// ClientMaxBodySizeSet is true when client_max_body_size appears in
	// this context or one it inherits from. gproxy enforces the limit on
	// grpc_pass locations only then: nginx's implicit 1m default would cut
	// long gRPC streams.
	ClientMaxBodySizeSet      bool
	KeepaliveTimeout          time.Duration
	KeepaliveRequests         int
	KeepaliveTime             time.Duration // keepalive_time; default 1h
	LargeClientHeaderBuffers  Buffers
	HTTP2MaxConcurrentStreams int
	HTTP2ChunkSize            int
	ClientHeaderTimeout       time.Duration // client_header_timeout; default 60s
	ClientBodyTimeout         time.Duration // client_body_timeout; default 60s
	SendTimeout               time.Duration // send_timeout; default 60s
	HTTP2BodyPrereadSize      int           // http2_body_preread_size: initial stream window; default 64k
	AccessLogs                []Log         // empty with AccessLogOff means off
	AccessLogOff              bool
	Resolver                  *Resolver     // nil when no resolver is configured
	ResolverTimeout           time.Duration // default 30s

	GRPC GRPCSettings
	SSL  SSLSettings

	Access AccessSettings // allow, deny, satisfy, auth_basic, realip
	Limits LimitSettings  // limit_req, limit_conn
	// AddHeaders and AddTrailers are add_header and add_trailer, in
	// order; a level that has none inherits its parent's list as a whole.
	AddHeaders  []AddHeader
	AddTrailers []AddHeader
	// ErrorPages are the error_page directives, inherited as a whole
	// like AddHeaders.
	ErrorPages          []ErrorPage
	RecursiveErrorPages bool
	// DefaultType is default_type: the content type of responses gproxy
	// makes (return, error pages); "text/plain" unless set.
	DefaultType string
	// Mirrors are the mirror URIs: each request also goes, as a
	// subrequest whose response is ignored, to the location of each.
	// MirrorRequestBody (mirror_request_body, default on) sends the body
	// with them, which makes the request wait for its whole body first.
	Mirrors           []string
	MirrorRequestBody bool
}

// AddHeader is one add_header or add_trailer: Name as written, Value a
// template (an empty value adds nothing). Without Always, the field is
// added only to responses with status 200, 201, 204, 206, 301, 302, 303,
// 304, 307 or 308, as nginx does.
type AddHeader struct {
	Name   string
	Value  Template
	Always bool
}

// ErrorPage is one `error_page CODE ... [=[RESPONSE]] URI|@name`.
type ErrorPage struct {
	Codes []int
	// Overwrite is the status sent: -1 keeps the error's code (no "="),
	// 0 takes the status the page answers with ("=" alone), else the
	// code after "=".
	Overwrite int
	// URI is the page: a path ("/50x.html"), a named location ("@name")
	// or a URL (http://..., https://..., $scheme...) to redirect to.
	URI Template
	Pos Pos
}

// Buffers is a "number size" pair such as `large_client_header_buffers 4 8k`.
type Buffers struct {
	Number int
	Size   int
}

// Header is one grpc_set_header: Name is lower-cased; an empty Value
// removes the header.
type Header struct {
	Name  string
	Value Template
}

// GRPCSettings are the grpc_* directives.
type GRPCSettings struct {
	SetHeaders          []Header // inherited as a whole, like nginx's arrays
	HideHeaders         []string // lower-cased, added to the default hidden set
	PassHeaders         []string // lower-cased, removed from the hidden set
	IgnoreHeaders       []string
	ConnectTimeout      time.Duration // default 60s
	ReadTimeout         time.Duration // default 60s
	SendTimeout         time.Duration // default 60s
	NextUpstream        []string      // default ["error", "timeout"]; ["off"] disables
	NextUpstreamTries   int           // 0 = unlimited
	NextUpstreamTimeout time.Duration // 0 = unlimited
	BufferSize          int           // default 4k/8k
	SocketKeepalive     bool
	InterceptErrors     bool

	SSLName               Template
	SSLServerName         bool
	SSLVerify             bool
	SSLVerifyDepth        int
	SSLTrustedCertificate string
	SSLCertificate        string
	SSLCertificateKey     string
	SSLProtocols          []string
	SSLCiphers            string
	// SSLPasswordFile is grpc_ssl_password_file: passphrases tried in
	// turn on an encrypted SSLCertificateKey.
	SSLPasswordFile string
	SSLCRL          string // grpc_ssl_crl
	// SSLSessionReuse is grpc_ssl_session_reuse (default on).
	SSLSessionReuse bool
	// SSLConfCommands are grpc_ssl_conf_command name/value pairs.
	SSLConfCommands [][2]string
	// SSLPos says where the grpc_ssl_* directives stand, for errors.
	SSLPos SSLPos
}

// SSLSettings are the ssl_* directives of http and server.
type SSLSettings struct {
	Certificates           []string
	CertificateKeys        []string
	Protocols              []string
	Ciphers                string
	PreferServerCiphers    bool
	SessionCache           string
	SessionTimeout         time.Duration
	VerifyClient           string // "off", "on", "optional", "optional_no_ca"
	VerifyDepth            int
	ClientCertificate      string
	TrustedCertificate     string
	SessionTickets         bool
	DHParam                string
	ECDHCurve              string
	StaplingEnabled        bool
	CertificateCacheEnable bool

	// PasswordFile is ssl_password_file: passphrases tried in turn on
	// encrypted keys.
	PasswordFile string
	// SessionTicketKeys are the ssl_session_ticket_key files, in order:
	// the first encrypts new tickets.
	SessionTicketKeys []string
	CRL               string // ssl_crl
	// RejectHandshake is ssl_reject_handshake: refuse TLS handshakes
	// that select this server.
	RejectHandshake bool
	// ConfCommands are ssl_conf_command name/value pairs.
	ConfCommands [][2]string
	// Pos says where the ssl_* directives stand, for errors.
	Pos SSLPos
}

// SSLPos holds where ssl_* or grpc_ssl_* directives stand, so that the
// errors of loading their files name FILE:LINE. Certificates and
// CertificateKeys are parallel to the lists they locate (one entry for
// grpc_ssl_*); a zero Pos means the directive was not written.
type SSLPos struct {
	Certificates       []Pos
	CertificateKeys    []Pos
	SessionTicketKeys  []Pos
	Protocols          Pos
	Ciphers            Pos
	ECDHCurve          Pos
	DHParam            Pos
	ClientCertificate  Pos
	TrustedCertificate Pos
	CRL                Pos
	PasswordFile       Pos
	VerifyClient       Pos
	ConfCommand        Pos
	Name               Pos
}
