package tlsconf

import (
	"crypto/tls"
	"regexp"
	"slices"
	"strings"
)

// OpenSSL cipher strings (ssl_ciphers, grpc_ssl_ciphers) mapped onto the
// TLS 1.0-1.2 suites Go implements. TLS 1.3 suites are not configurable,
// in Go as in OpenSSL's cipher string (ssl_conf_command Ciphersuites). Go
// orders the enabled suites itself (by the hardware's AES support), so
// only the set a string selects matters here: "+" and "@STRENGTH" change
// nothing.

// suite is one Go suite with its OpenSSL name and the OpenSSL aliases it
// belongs to.
type suite struct {
	id   uint16
	name string
	tags string
}

var suites = []suite{
	{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE-ECDSA-AES256-GCM-SHA384", "kECDHE aECDSA AES256 AESGCM AEAD SHA384 HIGH TLSv1.2"},
	{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE-RSA-AES256-GCM-SHA384", "kECDHE aRSA AES256 AESGCM AEAD SHA384 HIGH TLSv1.2"},
	{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-ECDSA-CHACHA20-POLY1305", "kECDHE aECDSA CHACHA20 AEAD SHA256 HIGH TLSv1.2"},
	{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE-RSA-CHACHA20-POLY1305", "kECDHE aRSA CHACHA20 AEAD SHA256 HIGH TLSv1.2"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE-ECDSA-AES128-GCM-SHA256", "kECDHE aECDSA AES128 AESGCM AEAD SHA256 HIGH TLSv1.2"},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE-RSA-AES128-GCM-SHA256", "kECDHE aRSA AES128 AESGCM AEAD SHA256 HIGH TLSv1.2"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, "ECDHE-ECDSA-AES128-SHA256", "kECDHE aECDSA AES128 SHA256 HIGH TLSv1.2"},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, "ECDHE-RSA-AES128-SHA256", "kECDHE aRSA AES128 SHA256 HIGH TLSv1.2"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, "ECDHE-ECDSA-AES256-SHA", "kECDHE aECDSA AES256 SHA1 HIGH TLSv1 SSLv3"},
	{tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, "ECDHE-RSA-AES256-SHA", "kECDHE aRSA AES256 SHA1 HIGH TLSv1 SSLv3"},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "ECDHE-ECDSA-AES128-SHA", "kECDHE aECDSA AES128 SHA1 HIGH TLSv1 SSLv3"},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, "ECDHE-RSA-AES128-SHA", "kECDHE aRSA AES128 SHA1 HIGH TLSv1 SSLv3"},
	{tls.TLS_RSA_WITH_AES_256_GCM_SHA384, "AES256-GCM-SHA384", "kRSA aRSA AES256 AESGCM AEAD SHA384 HIGH TLSv1.2"},
	{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "AES128-GCM-SHA256", "kRSA aRSA AES128 AESGCM AEAD SHA256 HIGH TLSv1.2"},
	{tls.TLS_RSA_WITH_AES_128_CBC_SHA256, "AES128-SHA256", "kRSA aRSA AES128 SHA256 HIGH TLSv1.2"},
	{tls.TLS_RSA_WITH_AES_256_CBC_SHA, "AES256-SHA", "kRSA aRSA AES256 SHA1 HIGH TLSv1 SSLv3"},
	{tls.TLS_RSA_WITH_AES_128_CBC_SHA, "AES128-SHA", "kRSA aRSA AES128 SHA1 HIGH TLSv1 SSLv3"},
	{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, "ECDHE-RSA-DES-CBC3-SHA", "kECDHE aRSA 3DES SHA1 MEDIUM TLSv1 SSLv3"},
	{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, "DES-CBC3-SHA", "kRSA aRSA 3DES SHA1 MEDIUM TLSv1 SSLv3"},
}

// aliases maps OpenSSL's alias names onto the tags above. An alias whose
// suites Go lacks (DHE, CAMELLIA, PSK ...) maps to "" and selects nothing,
// as it would in an OpenSSL built without them.
var aliases = map[string]string{
	"ALL": "*", "COMPLEMENTOFALL": "", "COMPLEMENTOFDEFAULT": "", "HIGH": "HIGH", "MEDIUM": "MEDIUM",
	"kECDHE": "kECDHE", "kEECDH": "kECDHE", "ECDHE": "kECDHE", "EECDH": "kECDHE", "ECDH": "kECDHE",
	"kRSA": "kRSA", "aRSA": "aRSA", "RSA": "kRSA aRSA", "aECDSA": "aECDSA", "ECDSA": "aECDSA",
	"AES": "AES128 AES256", "AES128": "AES128", "AES256": "AES256", "AESGCM": "AESGCM",
	"CHACHA20": "CHACHA20", "3DES": "3DES", "SHA1": "SHA1", "SHA": "SHA1", "SHA256": "SHA256",
	"SHA384": "SHA384", "TLSv1.2": "TLSv1.2", "TLSv1": "TLSv1", "TLSv1.0": "TLSv1", "SSLv3": "SSLv3",
	"aNULL": "", "eNULL": "", "NULL": "", "ADH": "", "AECDH": "", "EXPORT": "", "EXP": "", "LOW": "",
	"MD5": "", "DES": "", "RC4": "", "RC2": "", "IDEA": "", "SEED": "", "CAMELLIA": "",
	"CAMELLIA128": "", "CAMELLIA256": "", "ARIA": "", "ARIA128": "", "ARIA256": "", "AESCCM": "",
	"AESCCM8": "", "PSK": "", "kPSK": "", "aPSK": "", "kECDHEPSK": "", "ECDHEPSK": "", "kDHEPSK": "",
	"DHEPSK": "", "kRSAPSK": "", "RSAPSK": "", "SRP": "", "kSRP": "", "aSRP": "", "DH": "", "DHE": "",
	"EDH": "", "kDHE": "", "kEDH": "", "kDHr": "", "kDHd": "", "kDH": "", "aDSS": "", "DSS": "",
	"aDH": "", "aGOST": "", "aGOST01": "", "kGOST": "", "GOST94": "", "GOST89MAC": "", "aECDH": "",
	"SUITEB128": "", "SUITEB128ONLY": "", "SUITEB128C2": "", "SUITEB192": "", "CBC": "",
}

// openSSLOnly recognises the names of OpenSSL suites Go does not
// implement (DHE-RSA-AES128-GCM-SHA256, CAMELLIA256-SHA, ...): they
// select nothing rather than fail, as OpenSSL treats a name it lacks.
var openSSLOnly = regexp.MustCompile(`^(?:[A-Z0-9]+-)*(?:DHE|EDH|ADH|AECDH|CAMELLIA\d*|ARIA\d*|PSK|SRP|SEED|IDEA|RC4|RC2|DES|NULL|CCM8?|GOST\S*|DSS|EXP\S*)(?:-[A-Z0-9.]+)*$`)

// parseCiphers returns the Go suites an OpenSSL cipher string selects.
// reason is non-empty when the string cannot be honoured: a word neither
// OpenSSL nor Go knows, or no suite left.
func parseCiphers(s string) (ids []uint16, reason string) {
	active := make([]bool, len(suites))
	killed := make([]bool, len(suites))
	for _, rule := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' || r == ';' }) {
		if strings.HasPrefix(rule, "@") {
			continue // @STRENGTH, @SECLEVEL=n: ordering and policy only
		}
		op := byte(0)
		if c := rule[0]; c == '!' || c == '-' || c == '+' {
			op, rule = c, rule[1:]
		}
		if rule == "DEFAULT" {
			if op == 0 {
				for i := range suites {
					if !killed[i] && strings.Contains(suites[i].tags, "HIGH") {
						active[i] = true
					}
				}
			}
			continue
		}
		match, ok := matcher(rule)
		if !ok {
			return nil, "unknown cipher \"" + rule + "\""
		}
		for i := range suites {
			if !match(&suites[i]) {
				continue
			}
			switch op {
			case 0:
				if !killed[i] {
					active[i] = true
				}
			case '-':
				active[i] = false
			case '!':
				active[i], killed[i] = false, true
			}
		}
	}
	for i, on := range active {
		if on {
			ids = append(ids, suites[i].id)
		}
	}
	if len(ids) == 0 {
		return nil, "no cipher suite Go implements is selected"
	}
	return ids, ""
}

// matcher returns the test of one rule: a suite name, or aliases joined
// with '+' (all must match).
func matcher(rule string) (func(*suite) bool, bool) {
	for i := range suites {
		if suites[i].name == rule {
			id := suites[i].id
			return func(s *suite) bool { return s.id == id }, true
		}
	}
	if openSSLOnly.MatchString(rule) {
		return func(*suite) bool { return false }, true
	}
	var parts [][]string // each part: any of these tags
	for _, a := range strings.Split(rule, "+") {
		tags, ok := aliases[a]
		if !ok {
			return nil, false
		}
		parts = append(parts, strings.Fields(tags))
	}
	return func(s *suite) bool {
		have := strings.Fields(s.tags)
		for _, any := range parts {
			if len(any) == 1 && any[0] == "*" {
				continue
			}
			found := false
			for _, t := range any {
				if slices.Contains(have, t) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}, true
}
