package proxy

import (
	"strings"
	"testing"
)

// BenchmarkUnaryMethods: sequential unary calls over one client connection
// to three backends, with each balancing method, access log off. Compare
// each method with round robin in the same run.
func BenchmarkUnaryMethods(b *testing.B) {
	bes := []string{startH2Backend(b).ln.Addr().String(), startH2Backend(b).ln.Addr().String(), startH2Backend(b).ln.Addr().String()}
	for _, m := range []string{"round_robin", "least_conn", "ip_hash", "hash $request_uri consistent", "random two"} {
		b.Run(strings.ReplaceAll(m, " ", "_"), func(b *testing.B) {
			// The upstream block's body after "server ": the servers, then
			// the method (round robin is the default and has no directive).
			ups := strings.Join(bes, "; server ")
			if m != "round_robin" {
				ups += "; " + m
			}
			s := startBenchProxy(b, "access_log off;", ups)
			u := dialUnary(b, s.Addrs()[0].String())
			for range 3 { // warm the upstream connections
				if err := u.call(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := u.call(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
