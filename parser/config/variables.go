package config

// Variables are the fixed-name nginx variables gproxy fills at run time.
// The parser rejects any other name with nginx's "unknown variable" error,
// because gproxy would otherwise log or send an empty value; proxy/route
// evaluates every one of them (its tests check the two agree).
var Variables = []string{
	"remote_addr", "remote_port", "remote_user", "server_addr", "server_port", "server_name",
	"scheme", "https", "host", "hostname", "request", "request_method", "request_uri", "uri",
	"document_uri", "args", "query_string", "is_args", "content_type", "content_length",
	"server_protocol", "request_id", "time_local", "time_iso8601", "msec", "status",
	"request_time", "bytes_sent", "body_bytes_sent", "request_length", "connection",
	"connection_requests", "pid", "upstream_addr", "upstream_status", "upstream_response_time",
	"upstream_connect_time", "grpc_status", "grpc_message", "proxy_add_x_forwarded_for",
	"ssl_protocol", "ssl_cipher", "ssl_server_name", "ssl_session_reused", "ssl_client_verify",
	"ssl_client_s_dn", "ssl_client_i_dn", "ssl_client_serial", "ssl_client_fingerprint",
	"binary_remote_addr", "realip_remote_addr", "realip_remote_port", "limit_req_status", "limit_conn_status",
}

// VariablePrefixes are the families of variables named after a request
// header, response header, argument or cookie.
var VariablePrefixes = []string{"http_", "sent_http_", "arg_", "cookie_",
	"upstream_http_", "upstream_trailer_", "sent_trailer_"}

// OwnVariables are the variables of Variables that nginx does not have
// (gproxy's own). A configuration may define a variable of the same name
// (map, set): its definition wins, so a file written for nginx never
// breaks on them.
var OwnVariables = []string{"grpc_status", "grpc_message"}
