package tlsconf

import (
	"crypto/tls"
	"strings"

	"github.com/gproxy/gproxy/parser/config"
)

var versions = map[string]uint16{
	"TLSv1": tls.VersionTLS10, "TLSv1.1": tls.VersionTLS11, "TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13,
}

var versionOrder = []string{"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}

// protocolRange turns ssl_protocols into Go's MinVersion and MaxVersion.
// SSLv2 and SSLv3 are dropped (Go has neither, and OpenSSL 3 builds
// refuse them too); a list with a hole (TLSv1 TLSv1.2) cannot be honoured,
// since Go enables a range.
func protocolRange(list []string, at config.Pos) (lo, hi uint16, err error) {
	on := map[string]bool{}
	for _, p := range list {
		on[p] = true
	}
	first, last := -1, -1
	for i, name := range versionOrder {
		if on[name] {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return 0, 0, errAt(at, "no protocol of \"%s\" is supported by gproxy (Go's crypto/tls implements TLSv1 to TLSv1.3)", strings.Join(list, " "))
	}
	for i := first; i <= last; i++ {
		if !on[versionOrder[i]] {
			return 0, 0, errAt(at, "protocols \"%s\" are not supported by gproxy: Go's crypto/tls enables a range of versions, and %s lies inside it", strings.Join(list, " "), versionOrder[i])
		}
	}
	return versions[versionOrder[first]], versions[versionOrder[last]], nil
}

// curves turns ssl_ecdh_curve (OpenSSL names, ':'-separated, or "auto")
// into Go's CurvePreferences; nil means Go's defaults.
func curves(v string, at config.Pos) ([]tls.CurveID, error) {
	if v == "" || v == "auto" {
		return nil, nil
	}
	var out []tls.CurveID
	for _, name := range strings.Split(v, ":") {
		id, ok := curveNames[name]
		if !ok {
			return nil, errAt(at, "SSL_CTX_set1_curves_list(\"%s\") failed (curve \"%s\" is not implemented by Go's crypto/tls, which has X25519, X25519MLKEM768, prime256v1, secp384r1 and secp521r1)", v, name)
		}
		out = append(out, id)
	}
	return out, nil
}

var curveNames = map[string]tls.CurveID{
	"X25519": tls.X25519, "x25519": tls.X25519,
	"X25519MLKEM768": tls.X25519MLKEM768,
	"prime256v1":     tls.CurveP256, "secp256r1": tls.CurveP256, "P-256": tls.CurveP256,
	"secp384r1": tls.CurveP384, "P-384": tls.CurveP384,
	"secp521r1": tls.CurveP521, "P-521": tls.CurveP521,
}

// applyConfCommands applies ssl_conf_command / grpc_ssl_conf_command
// pairs that have a Go equivalent; any other is an error in nginx's words
// for a command OpenSSL refuses.
func applyConfCommands(c *tls.Config, cmds [][2]string, at config.Pos) error {
	for _, kv := range cmds {
		name, v := kv[0], kv[1]
		fail := func(why string) error {
			return errAt(at, "SSL_CONF_cmd(\"%s\", \"%s\") failed (%s)", name, v, why)
		}
		switch name {
		case "MinProtocol", "MaxProtocol":
			ver, ok := versions[v]
			if !ok {
				return fail("Go's crypto/tls implements TLSv1 to TLSv1.3")
			}
			if name == "MinProtocol" {
				c.MinVersion = ver
			} else {
				c.MaxVersion = ver
			}
		case "Curves", "Groups":
			cs, err := curves(v, at)
			if err != nil {
				return err
			}
			c.CurvePreferences = cs
		case "CipherString":
			ids, reason := parseCiphers(v)
			if reason != "" {
				return fail(reason)
			}
			c.CipherSuites = ids
		case "Options":
			for _, o := range strings.Split(v, ",") {
				switch strings.TrimSpace(o) {
				case "ServerPreference", "PrioritizeChaCha":
					// What Go's crypto/tls always does: the server's
					// order, ChaCha20 first for clients without AES
					// hardware.
				case "-SessionTicket", "NoTicket":
					c.SessionTicketsDisabled = true
				case "SessionTicket", "-NoTicket":
					c.SessionTicketsDisabled = false
				default:
					return fail("option \"" + o + "\" has no equivalent in Go's crypto/tls")
				}
			}
		default:
			return fail("no equivalent in Go's crypto/tls; gproxy accepts MinProtocol, MaxProtocol, Curves, Groups, CipherString and Options")
		}
	}
	return nil
}
