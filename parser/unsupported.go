package parser

// unsupportedCommands name, beyond gonginx's list of nginx directives,
// common directives and blocks gproxy rejects; they are listed so that the
// README table shows them and so that a block such as `stream {}` is
// rejected at its name rather than read.
var unsupportedCommands = unsupported(
	"stream", "mail", "proxy_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "memcached_pass",
	"alias", "try_files", "auth_request", "geo", "split_clients",
	"load_module", "thread_pool", "debug_connection", "sub_filter",
	"proxy_set_header", "sticky", "ntlm", "queue",
	"content_by_lua_block", "access_by_lua_block", "rewrite_by_lua_block", "init_by_lua_block",
	"init_worker_by_lua_block", "header_filter_by_lua_block", "body_filter_by_lua_block",
	"log_by_lua_block", "balancer_by_lua_block", "ssl_certificate_by_lua_block", "set_by_lua_block",
	"content_by_lua", "content_by_lua_file", "access_by_lua_file", "rewrite_by_lua_file",
)
