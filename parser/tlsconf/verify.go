package tlsconf

import (
	"crypto/x509"
	"errors"
	"time"
)

// Results of client verification, as $ssl_client_verify shows them.
const (
	VerifyNone    = "NONE"
	VerifySuccess = "SUCCESS"
)

// Verify checks the certificates a client sent (leaf first) against the
// server's ssl_client_certificate and ssl_trusted_certificate, with
// ssl_verify_depth and ssl_crl, and returns $ssl_client_verify: "NONE"
// without a certificate, "SUCCESS", or "FAILED:" and OpenSSL's text for
// the reason. With ssl_verify_client off it returns "NONE".
func (s *Server) Verify(certs []*x509.Certificate, now time.Time) string {
	if s == nil || s.roots == nil && s.verify != "optional_no_ca" || len(certs) == 0 || s.verify == "off" {
		return VerifyNone
	}
	if s.roots == nil {
		return "FAILED:" + unknownIssuer(certs)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots: s.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "FAILED:" + verifyReason(err, certs, now)
	}
	// ssl_verify_depth counts the certificates above the client's.
	var best []*x509.Certificate
	for _, ch := range chains {
		if len(ch)-1 <= max(s.depth, 0) && (best == nil || len(ch) < len(best)) {
			best = ch
		}
	}
	if best == nil {
		return "FAILED:certificate chain too long"
	}
	if r := s.crl.check(best); r != "" {
		return "FAILED:" + r
	}
	return VerifySuccess
}

// Refusal returns nginx's answer to a request on a connection whose
// client verification gave verify, by the request's server's
// ssl_verify_client: "" to serve it, else the text of nginx's 400 page
// ("No required SSL certificate was sent" for its code 496, "The SSL
// certificate error" for 495).
func (s *Server) Refusal(verify string) string {
	if s == nil {
		return ""
	}
	switch {
	case s.verify == "" || s.verify == "off":
		return ""
	case verify == VerifyNone || verify == "":
		if s.verify == "on" {
			return "No required SSL certificate was sent"
		}
		return ""
	case verify == VerifySuccess:
		return ""
	case s.verify == "optional_no_ca" && optionalError(verify[len("FAILED:"):]):
		return ""
	}
	return "The SSL certificate error"
}

// optionalError lists the failures optional_no_ca lets through: those of
// a certificate whose issuer is not trusted (nginx's
// ngx_ssl_verify_error_optional).
func optionalError(reason string) bool {
	switch reason {
	case "self-signed certificate", "self-signed certificate in certificate chain",
		"unable to get issuer certificate", "unable to get local issuer certificate",
		"unable to verify the first certificate":
		return true
	}
	return false
}

// verifyReason maps a Go verification error onto OpenSSL 3's text for
// the same failure (X509_verify_cert_error_string).
func verifyReason(err error, certs []*x509.Certificate, now time.Time) string {
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv):
		switch inv.Reason {
		case x509.Expired:
			if inv.Cert != nil && now.Before(inv.Cert.NotBefore) {
				return "certificate is not yet valid"
			}
			return "certificate has expired"
		case x509.IncompatibleUsage:
			return "unsupported certificate purpose"
		case x509.NotAuthorizedToSign:
			return "invalid CA certificate"
		case x509.TooManyIntermediates:
			return "certificate chain too long"
		}
		return inv.Error()
	case errors.As(err, &ua):
		return unknownIssuer(certs)
	}
	return err.Error()
}

// unknownIssuer is OpenSSL's text for a chain that ends at no trusted
// certificate.
func unknownIssuer(certs []*x509.Certificate) string {
	last := certs[len(certs)-1]
	if string(last.RawIssuer) == string(last.RawSubject) && last.CheckSignature(last.SignatureAlgorithm, last.RawTBSCertificate, last.Signature) == nil {
		if len(certs) == 1 {
			return "self-signed certificate"
		}
		return "self-signed certificate in certificate chain"
	}
	return "unable to get local issuer certificate"
}
