package route

import (
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"strings"
	"sync"
)

// TLS is what the ssl_* variables read from a client connection over TLS.
// The engine fills it once per connection after the handshake; the
// formatted values are computed on first use and kept.
type TLS struct {
	State tls.ConnectionState
	// Verify is $ssl_client_verify: "NONE", "SUCCESS" or "FAILED:reason".
	Verify string

	once                          sync.Once
	sDN, iDN, serial, fingerprint string
}

// certValues formats the client certificate's values once.
func (t *TLS) certValues() {
	t.once.Do(func() {
		if len(t.State.PeerCertificates) == 0 {
			return
		}
		c := t.State.PeerCertificates[0]
		t.sDN = rfc2253(c.RawSubject, c.Subject)
		t.iDN = rfc2253(c.RawIssuer, c.Issuer)
		t.serial = serialHex(c)
		sum := sha1.Sum(c.Raw)
		t.fingerprint = hex.EncodeToString(sum[:])
	})
}

// sslVar is the table row of an ssl_* variable: empty and not found on a
// cleartext connection, and not found when empty (no client certificate,
// no SNI), as nginx's.
func sslVar(name string, get func(t *TLS) string) *variable {
	return &variable{name: name,
		str: func(_ *Table, _ varRef, r *Request) (string, bool) {
			if r.TLS == nil {
				return "", true
			}
			return get(r.TLS), true
		},
		found: func(_ *Table, _ varRef, r *Request) bool { return r.TLS != nil && get(r.TLS) != "" },
	}
}

// sslVars are the rows of the ssl_* variables.
var sslVars = []*variable{
	sslVar("ssl_protocol", func(t *TLS) string { return protocolName(t.State.Version) }),
	sslVar("ssl_cipher", func(t *TLS) string { return cipherName(t.State.CipherSuite) }),
	sslVar("ssl_server_name", func(t *TLS) string { return t.State.ServerName }),
	sslVar("ssl_session_reused", func(t *TLS) string {
		if t.State.DidResume {
			return "r"
		}
		return "."
	}),
	sslVar("ssl_client_verify", func(t *TLS) string {
		if t.Verify == "" {
			return "NONE"
		}
		return t.Verify
	}),
	sslVar("ssl_client_s_dn", func(t *TLS) string { t.certValues(); return t.sDN }),
	sslVar("ssl_client_i_dn", func(t *TLS) string { t.certValues(); return t.iDN }),
	sslVar("ssl_client_serial", func(t *TLS) string { t.certValues(); return t.serial }),
	sslVar("ssl_client_fingerprint", func(t *TLS) string { t.certValues(); return t.fingerprint }),
}

// protocolName is OpenSSL's name of a TLS version ($ssl_protocol).
func protocolName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return "unknown"
}

// cipherName is OpenSSL's name of a suite ($ssl_cipher):
// "ECDHE-RSA-AES128-GCM-SHA256", or the RFC name for TLS 1.3 suites, as
// OpenSSL names those.
func cipherName(id uint16) string {
	if n, ok := openSSLCipherNames[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id)
}

var openSSLCipherNames = map[uint16]string{
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       "ECDHE-ECDSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         "ECDHE-RSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   "ECDHE-RSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       "ECDHE-ECDSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         "ECDHE-RSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256:       "ECDHE-ECDSA-AES128-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256:         "ECDHE-RSA-AES128-SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:          "ECDHE-ECDSA-AES256-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:            "ECDHE-RSA-AES256-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA:          "ECDHE-ECDSA-AES128-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:            "ECDHE-RSA-AES128-SHA",
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384:               "AES256-GCM-SHA384",
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256:               "AES128-GCM-SHA256",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA256:               "AES128-SHA256",
	tls.TLS_RSA_WITH_AES_256_CBC_SHA:                  "AES256-SHA",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA:                  "AES128-SHA",
	tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA:           "ECDHE-RSA-DES-CBC3-SHA",
	tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA:                 "DES-CBC3-SHA",
}

// serialHex is OpenSSL's i2a_ASN1_INTEGER form of the serial number
// ($ssl_client_serial): upper-case hex, two digits a byte.
func serialHex(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	b := c.SerialNumber.Bytes()
	if len(b) == 0 {
		return "00"
	}
	s := strings.ToUpper(hex.EncodeToString(b))
	if c.SerialNumber.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// rfc2253 prints a distinguished name as OpenSSL's X509_NAME_print_ex with
// XN_FLAG_RFC2253 does, which nginx uses for $ssl_client_s_dn and
// $ssl_client_i_dn since 1.11.6: the last RDN first, OpenSSL's short
// attribute names, RFC 2253 escaping, "+" inside a multi-valued RDN, and
// unknown attributes as OID=#HEX of their DER value.
func rfc2253(raw []byte, n pkix.Name) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return n.String()
	}
	var b strings.Builder
	for i := len(seq) - 1; i >= 0; i-- {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		for j, atv := range seq[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			name, ok := attrNames[atv.Type.String()]
			s, isString := atv.Value.(string)
			if !ok || !isString {
				der, err := asn1.Marshal(atv.Value)
				b.WriteString(atv.Type.String())
				b.WriteString("=#")
				if err == nil {
					b.WriteString(strings.ToUpper(hex.EncodeToString(der)))
				}
				continue
			}
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(escapeDN(s))
		}
	}
	return b.String()
}

var attrNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.5": "serialNumber", "2.5.4.9": "street", "2.5.4.17": "postalCode", "2.5.4.4": "SN",
	"2.5.4.42": "GN", "2.5.4.12": "title", "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
	"0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
	"1.2.840.113549.1.9.1": "emailAddress", "2.5.4.97": "organizationIdentifier",
	"1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC", "2.5.4.15": "businessCategory",
}

// escapeDN escapes an attribute value as RFC 2253 section 2.4 asks.
func escapeDN(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';',
			i == 0 && (c == ' ' || c == '#'), i == len(s)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteString("\\")
			b.WriteString(strings.ToUpper(hex.EncodeToString([]byte{c})))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
