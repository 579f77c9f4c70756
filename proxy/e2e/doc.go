// Package e2e holds gproxy's end-to-end tests: real gRPC clients and
// backends on 127.0.0.1 with the proxy between them, started from an
// nginx.conf exactly as a user would write it.
//
// By default the proxy under test is gproxy, run in-process through
// proxy.New so that the race detector covers the engine. The same tests can
// run against nginx for comparison:
//
//	go test ./proxy/e2e/ -args -e2e.proxy=nginx
//
// (add -tags nginxonly to build the suite without the engine). Where nginx
// differs from what gproxy promises, the test logs "known nginx difference"
// and skips that assertion for nginx rather than bending it.
package e2e
