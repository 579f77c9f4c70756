package route

import "net"

// SNIMismatch reports the first half of nginx's 421 rule for a request on
// a TLS connection (ngx_http_set_virtual_server): the client's SNI, sni,
// named a server of this listener (by server_name, not by falling back to
// the default server) and the request's host (its :authority or Host,
// normalised as for server selection) is another name. An absent or
// invalid host is no mismatch: nginx answers those before, or not at all.
// local is the connection's local address, as for ServerAt.
func (l *Listener) SNIMismatch(local net.Addr, sni, host string) bool {
	name, ok := normalizeHost(sni)
	if !ok {
		return false
	}
	if _, named := l.forLocal(local).names.lookup(name, nil, nil); !named {
		return false
	}
	h, ok := normalizeHost(host)
	return ok && h != name
}
