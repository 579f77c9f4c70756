// Package tlsconf turns the ssl_* settings of a virtual server and the
// grpc_ssl_* settings of a grpc_pass location into crypto/tls
// configurations, loading certificates, keys, CA lists and CRLs from disk,
// and verifies client certificates the way nginx's ssl_verify_client does
// so that $ssl_client_verify reads as in nginx.
//
// Loading errors keep nginx's wording up to the OpenSSL call nginx names
// ("cannot load certificate key \"/k.pem\": PEM_read_bio_PrivateKey()
// failed") and put Go's reason after it, since Go's errors are not
// OpenSSL's; each names the directive's FILE:LINE (nginx names none for
// most of them).
package tlsconf
