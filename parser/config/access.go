package config

import "net/netip"

// AccessSettings are what nginx's access phase and the modules before it
// read for one location: allow/deny (ngx_http_access_module), satisfy,
// auth_basic (ngx_http_auth_basic_module) and the real client address
// (ngx_http_realip_module).
type AccessSettings struct {
	// Rules are allow and deny in order. A level that has any replaces
	// what it inherits, as nginx merges them.
	Rules []AccessRule
	// SatisfyAny is `satisfy any`: one passing check (address or
	// password) lets the request through; `satisfy all` (the default)
	// needs every configured check to pass.
	SatisfyAny bool
	// AuthBasic is the realm of auth_basic, nil when not set (or
	// inherited as unset). A realm that evaluates to "off" turns
	// authentication off for the request.
	AuthBasic *Template
	// UserFile is auth_basic_user_file, read when the configuration is
	// loaded; nil when not set.
	UserFile *UserFile
	// RealIP is set_real_ip_from, real_ip_header and real_ip_recursive.
	RealIP RealIP
}

// AccessRule is one allow or deny.
type AccessRule struct {
	Deny bool
	// All matches every client (allow all / deny all).
	All bool
	// Unix matches clients on Unix-domain sockets (`unix:`).
	Unix bool
	// Prefix is the address or CIDR, host bits cleared; IPv4 rules match
	// IPv4 clients (IPv4-mapped IPv6 included), IPv6 rules IPv6 clients.
	Prefix netip.Prefix
	Pos    Pos
}

// UserFile is an htpasswd file as nginx reads it: "user:password" lines,
// '#' comments, the first line of a user wins.
type UserFile struct {
	Path  string // absolute; "" when the name has variables
	Users []UserEntry
	// Template is the file name when it has variables: it is expanded
	// and read per request, a relative result against ConfPrefix.
	Template   *Template
	ConfPrefix string
	Pos        Pos
}

// UserEntry is one line of a UserFile. Hash is the password field as
// written: "{PLAIN}text", "{SHA}base64", "{SSHA}base64", "$apr1$...",
// or a crypt(3) string ($1$, $5$, $6$, $2y$/$2b$/$2a$).
type UserEntry struct {
	User string
	Hash string
	Line int
}

// RealIP is the realip module's configuration for a location.
type RealIP struct {
	// From lists the trusted addresses (set_real_ip_from); empty means
	// the module is off. FromUnix trusts Unix-domain socket clients.
	From     []netip.Prefix
	FromUnix bool
	// Header is real_ip_header: "X-Real-IP" (the default),
	// "X-Forwarded-For" or any other header name (lower-cased).
	Header    string
	Recursive bool
}

// LimitReqZone is limit_req_zone: the key, size and rate of one zone of
// request-rate states, shared by every limit_req that names it.
type LimitReqZone struct {
	Name string
	Key  Template
	Size int64 // bytes
	// Rate is in thousandths of a request per second, as nginx keeps it
	// (1r/s = 1000, 30r/m = 500).
	Rate int64
	Pos  Pos
}

// LimitConnZone is limit_conn_zone: the key and size of one zone of
// connection (for gproxy: concurrent stream) counts.
type LimitConnZone struct {
	Name string
	Key  Template
	Size int64 // bytes
	Pos  Pos
}

// LimitReq is one limit_req of a location.
type LimitReq struct {
	Zone *LimitReqZone
	// Burst and Delay are in requests; NoDelay is `nodelay` (no request
	// within the burst waits).
	Burst   int
	Delay   int
	NoDelay bool
}

// LimitConn is one limit_conn of a location.
type LimitConn struct {
	Zone *LimitConnZone
	Conn int
}

// LimitSettings are the limit_req_* and limit_conn_* settings of a
// location. Each list is inherited as a whole by a level that has none.
type LimitSettings struct {
	Req          []LimitReq
	ReqStatus    int    // limit_req_status; default 503
	ReqLogLevel  string // "info", "notice", "warn" or "error" (default)
	ReqDryRun    bool
	Conn         []LimitConn
	ConnStatus   int    // limit_conn_status; default 503
	ConnLogLevel string // default "error"
	ConnDryRun   bool
}

// LimitExcept is a `limit_except METHOD ... { ... }` block: a request whose
// method is not listed uses Access instead of its location's.
type LimitExcept struct {
	// Methods are the allowed methods, upper-case; GET implies HEAD.
	Methods []string
	// Access is the location's access settings with the block's
	// directives applied.
	Access AccessSettings
	Pos    Pos
}

// Allows reports whether method is one of the block's methods.
func (le *LimitExcept) Allows(method string) bool {
	for _, m := range le.Methods {
		if m == method {
			return true
		}
	}
	return false
}
